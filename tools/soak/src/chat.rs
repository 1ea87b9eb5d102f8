//! The chat text every soak client sends: a payload whose filler any receiver can
//! check ("<nick> <seq> <filler>", the filler a function of nick and seq), so that a
//! corrupted, truncated or misrouted message is noticed wherever it arrives.

use testkit::rng::Rng;

/// A chat payload whose filler can be checked by any receiver: "<nick> <seq> <filler>".
pub fn chat_text(nick: &str, seq: u64) -> String {
    format!("{nick} {seq} {}", filler(nick, seq))
}

fn filler(nick: &str, seq: u64) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in nick.bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    h ^= seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let len = 8 + (h % 180) as usize;
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut r = Rng::new(h);
    (0..len)
        .map(|_| alphabet[r.below(alphabet.len())] as char)
        .collect()
}

/// Checks "<nick> <seq> <filler>"; returns (nick, seq) when intact.
pub fn check_chat(text: &str) -> Option<(String, u64)> {
    let mut it = text.splitn(3, ' ');
    let nick = it.next()?;
    let seq: u64 = it.next()?.parse().ok()?;
    let f = it.next()?;
    (f == filler(nick, seq)).then(|| (nick.to_string(), seq))
}

/// ":nick!user@host PRIVMSG #chan :text" -> (nick, chan, text).
pub fn parse_privmsg(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix(':')?;
    let (prefix, rest) = rest.split_once(' ')?;
    let nick = prefix.split('!').next()?;
    let rest = rest.strip_prefix("PRIVMSG ")?;
    let (chan, text) = rest.split_once(" :")?;
    Some((nick, chan, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_texts_check() {
        let t = chat_text("s1g2", 7);
        assert_eq!(check_chat(&t), Some(("s1g2".into(), 7)));
        assert_eq!(check_chat(&t.replace("s1g2 7", "s1g2 8")), None);
        let line = format!(":s1g2!ws@127.0.0.1 PRIVMSG #c3 :{t}");
        assert_eq!(parse_privmsg(&line), Some(("s1g2", "#c3", t.as_str())));
    }
}
