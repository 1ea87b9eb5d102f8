//! What the stock module gained from InspIRCd 4.7 to 4.11 and the 4.x branch after it,
//! which this module must do at least as well (tests/it/ping_timer.rs has the native
//! ping written at once, which the 4.x branch fixed in stock after 4.11.0).

use crate::common::*;

/// Stock 4.11 warns about `<wsorigin allow>` values that let any website in: `*`,
/// `http://*`, `https://*`. So does this module, on every server, naming each value
/// and where it is, and it warns about no narrower value.
#[test]
fn catch_all_origins_are_logged_with_their_location() {
    let catch_all = ["*", "http://*", "https://*"];
    let mut origins = catch_all.to_vec();
    origins.push(ORIGIN);
    let server = Server::start(Conf::new(Module::Ours).origins(&origins));
    let config = server.config_path.display().to_string();
    for allow in catch_all {
        let line = server.wait_log(&format!("the warning for {allow}"), |l| {
            l.contains("WARNING") && l.contains(&format!("\"{allow}\" at {config}:"))
        });
        assert!(line.contains("admits every website"), "{line}");
    }
    let narrower = server.log_lines(|l| l.contains(&format!("\"{ORIGIN}\"")));
    assert!(narrower.is_empty(), "{narrower:?}");
}
