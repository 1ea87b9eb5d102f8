//! permessage-deflate from a raw client: the test kit's [`Client`] offering it as
//! browsers do (it then compresses each of its messages on its own, as the module's
//! `client_no_context_takeover` asks, and inflates the server's with the kit's
//! inflater, miniz_oxide, which shares no code with the module's compressor), and what
//! the compression tests share.

use testkit::ws::BROWSER_DEFLATE_OFFER;

use super::{Client, ClientResult, HttpResponse, IrcLines};

/// A raw client upgraded with the browsers' deflate offer and `origin`, that registers
/// with the ident `z` and takes only text messages, each in one frame.
pub fn deflate_client(port: u16, origin: &str) -> ClientResult<(Client, HttpResponse)> {
    let mut conn = Client::raw(None, port)?
        .ident("z", "Compressed user")
        .requiring_opcode(testkit::ws::OP_TEXT);
    let r = conn.upgrade_with(&testkit::ws::upgrade_request(
        "127.0.0.1",
        origin,
        &[BROWSER_DEFLATE_OFFER],
    ))?;
    Ok((conn, r))
}

/// Texts that give a compressor something to do, starting with `first` and naming
/// `who`: PRIVMSG texts sharing most of their bytes (the server keeps its window from
/// one message to the next), one of about 400 bytes that repeats itself, and UTF-8 of
/// 2, 3 and 4 bytes a character.
pub fn compressible_texts(first: &str, who: &str) -> Vec<String> {
    let mut texts: Vec<String> = (0..6)
        .map(|i| format!("{first} [{who} {i}] the same words again, and again, and again"))
        .collect();
    let long = "ünïcödé lorem ipsum ✓ ".repeat(14);
    assert!((380..=420).contains(&long.len()), "{}", long.len());
    texts.push(format!("{long}[{who}]"));
    texts.push(format!("{first} {who} 🎉 ✌"));
    texts
}

/// Asserts that the server's STATS W (asked by a new oper on `irc_port`) counts
/// `count` upgrades that negotiated permessage-deflate; `whose` names them.
pub fn assert_deflate_accepted(irc_port: u16, count: usize, whose: &str) {
    let mut oper = Client::irc_register(irc_port, "opz").expect("an oper for STATS W");
    oper.oper().expect("OPER");
    let stats = oper.stats_w().expect("STATS W");
    let want = format!("accepted with permessage-deflate: {count}");
    assert!(
        stats.iter().any(|l| l.contains(&want)),
        "{whose}: STATS W should say {want:?}: {stats:#?}"
    );
}
