//! Splitting an HTTP header's list at its separators, but not inside quoted strings
//! (RFC 9110 5.6: `,` between elements, `;` between parameters, and `"..."` with `\`
//! escapes as values). Used by permessage-deflate offers and by `Forwarded`.

/// `text` split at each `separator` that is not inside a quoted string; a `\` inside
/// quotes escapes the next character.
pub(crate) fn split_outside_quotes(text: &str, separator: char) -> impl Iterator<Item = &str> {
    let (mut quoted, mut escaped) = (false, false);
    // `str::split` calls the predicate once per character, front to back; the
    // `impl Iterator` return keeps callers from iterating from the back, which would
    // visit the characters in another order.
    text.split(move |c: char| match c {
        _ if escaped => {
            escaped = false;
            false
        }
        '\\' if quoted => {
            escaped = true;
            false
        }
        '"' => {
            quoted = !quoted;
            false
        }
        c => c == separator && !quoted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, separator: char) -> Vec<&str> {
        split_outside_quotes(text, separator).collect()
    }

    #[test]
    fn separators_inside_quotes_do_not_split() {
        assert_eq!(split("a, b", ','), ["a", " b"]);
        assert_eq!(
            split(r#"for="[::1]:80,x";proto=https, for=1.2.3.4"#, ','),
            [r#"for="[::1]:80,x";proto=https"#, " for=1.2.3.4"]
        );
        assert_eq!(split(r#"x="a;b";y"#, ';'), [r#"x="a;b""#, "y"]);
    }

    #[test]
    fn an_escaped_quote_does_not_end_the_quoted_string() {
        assert_eq!(split(r#"x="a\",b",y"#, ','), [r#"x="a\",b""#, "y"]);
        // Outside quotes a backslash is an ordinary character.
        assert_eq!(split(r"a\,b", ','), [r"a\", "b"]);
    }

    #[test]
    fn empty_pieces_and_unclosed_quotes() {
        assert_eq!(split("", ','), [""]);
        assert_eq!(split(",", ','), ["", ""]);
        assert_eq!(split(r#"a,"b,c"#, ','), ["a", r#""b,c"#]);
        assert_eq!(split("é,ü", ','), ["é", "ü"]);
    }
}
