//! permessage-deflate on a generated channel burst: bytes on the wire with and without
//! compression, and the time to frame each line, for the defaults and a few settings.
//! Prints figures; asserts nothing (`cargo bench --bench compression`).
//!
//! With `--once`, only the uncompressed pass and the defaults run, once each, in
//! functions of their own for counting instructions: `valgrind --tool=callgrind
//! --toggle-collect='*once_uncompressed*'` (or `'*once_defaults*'`) on the bench's
//! binary counts one pass; divided by the burst's lines, per line
//! (docs/PERFORMANCE.md).
//!
//! The burst, from a fixed seed: 200 nicks built from syllables, each with an ident and
//! a host in InspIRCd's formats (a cloak `xxxxxxxx.yyyyyyyy.example.net`, or an IP
//! cloak), in one channel. 90% of lines are `PRIVMSG #channel :text`, the rest JOIN,
//! PART, QUIT and NICK, with the server's own `:nick!ident@host` prefix. Message text
//! is 1 to 24 words drawn from a 400-word vocabulary by a Zipf-like rank, with an
//! occasional URL, a nick addressed at the start and punctuation: chat lines of about
//! 40 characters on average. One receiver's view: every line of the burst, in order.

#![allow(
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: clippy's default set; a broken expectation fails the run loudly"
)]

use std::hint::black_box;
use std::time::Instant;

use inspircd_websocket::compression::{negotiate, Compressor, Settings};
use inspircd_websocket::irc::{LineFramer, MessageMode};
// xorshift64* from a fixed state: the burst is the same on every run.
use testkit::rng::Rng;

/// Lines in the burst.
const LINES: usize = 20_000;
/// Nicks in the channel.
const NICKS: usize = 200;

const SYLLABLES: [&str; 24] = [
    "ka", "ri", "to", "mi", "zen", "lo", "dar", "vex", "no", "sha", "qu", "el", "bo", "tan", "ix",
    "ra", "mo", "fy", "gr", "ul", "pe", "sk", "wo", "je",
];

const WORDS: &str = "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she or an will my one all would there their what so up out if about who get which go me when make can like time no just him know take people into year your good some could them see other than then now look only come its over think also back after use two how our work first well way even new want because any these give day most us is was are were been has had did said does got yeah ok lol hey hi thanks please sorry yes sure maybe really right still here today tomorrow tonight again never always something anything nothing everything someone anyone channel server irc client network bot nick join part quit message link web browser page chat room topic mode op voice ban kick user host ping pong lag split connect connected disconnect reconnect config module update version build test bug fix patch release code commit merge branch issue problem error works working broken crash log logs reboot restart install package debian linux windows mac phone laptop desktop keyboard mouse screen music game play played playing watch movie show episode season weekend morning evening night coffee tea food lunch dinner breakfast beer pizza home office job meeting call email mail send sent read write wrote question answer idea plan think thought guess true false big small long short fast slow hot cold nice cool great awesome bad worse best better weird funny interesting boring busy free tired happy sad glad angry friend friends family kids dog cat weather rain snow sun wind cloud city town country world news post article video picture photo file files folder disk memory cpu ram speed cost price money pay buy sell shop store car bus train plane trip travel holiday week month hour minute second old young man woman guy girl boy thing things stuff place part point case fact hand eye life world state word number group area line end side kind head house service friend power hour game line members name face percent";

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[rng.below(list.len())]
}

struct User {
    nick: String,
    ident: String,
    host: String,
}

fn users(rng: &mut Rng) -> Vec<User> {
    (0..NICKS)
        .map(|i| {
            let mut nick: String = (0..2 + rng.below(2))
                .map(|_| pick(rng, &SYLLABLES))
                .collect();
            if rng.below(3) == 0 {
                nick.push_str(&rng.below(100).to_string());
            }
            nick.push_str(&(i % 7).to_string());
            let ident = if rng.below(2) == 0 {
                format!("~{}", &nick[..nick.len().min(8)])
            } else {
                "webirc".to_string()
            };
            let host = if rng.below(3) == 0 {
                format!(
                    "{:08X}.{:08X}.{:08X}.IP",
                    rng.next_u64() as u32,
                    rng.next_u64() as u32,
                    rng.next_u64() as u32
                )
            } else {
                format!(
                    "{:08x}.{:08x}.example.net",
                    rng.next_u64() as u32,
                    rng.next_u64() as u32
                )
            };
            User { nick, ident, host }
        })
        .collect()
}

fn text(rng: &mut Rng, words: &[&str], users: &[User]) -> String {
    let mut t = String::new();
    if rng.below(5) == 0 {
        t.push_str(&users[rng.below(users.len())].nick);
        t.push_str(": ");
    }
    let n = 1 + rng.rank(24);
    for i in 0..n {
        if i > 0 {
            t.push(' ');
        }
        if rng.below(60) == 0 {
            t.push_str(&format!(
                "https://example.org/{:x}",
                rng.next_u64() & 0xffffff
            ));
        } else {
            t.push_str(words[rng.rank(words.len())]);
        }
    }
    match rng.below(6) {
        0 => t.push('?'),
        1 => t.push('.'),
        2 => t.push_str(" :)"),
        _ => {}
    }
    t
}

fn burst() -> Vec<Vec<u8>> {
    let mut rng = Rng::from_state(0x9e37_79b9_7f4a_7c15);
    let words: Vec<&str> = WORDS.split(' ').collect();
    let users = users(&mut rng);
    (0..LINES)
        .map(|_| {
            let u = &users[rng.rank(users.len())];
            let prefix = format!(":{}!{}@{}", u.nick, u.ident, u.host);
            let line = match rng.below(40) {
                0 => format!("{prefix} JOIN :#channel"),
                1 => format!("{prefix} PART #channel :{}", text(&mut rng, &words, &users)),
                2 => format!("{prefix} QUIT :Quit: {}", text(&mut rng, &words, &users)),
                3 => format!("{prefix} NICK :{}_", u.nick),
                _ => format!(
                    "{prefix} PRIVMSG #channel :{}",
                    text(&mut rng, &words, &users)
                ),
            };
            format!("{line}\r\n").into_bytes()
        })
        .collect()
}

/// Frames the burst through one connection; returns (bytes on the wire, ns per line).
fn run(lines: &[Vec<u8>], settings: Option<&(Settings, &[u8])>) -> (usize, f64) {
    let mut framer = LineFramer::default();
    let mut compressor = settings.map(|(s, offer)| {
        let agreed = negotiate([*offer].into_iter(), s).expect("offer accepted");
        Compressor::new(s, &agreed)
    });
    let mut out = Vec::with_capacity(1 << 20);
    let mut wire = 0;
    let start = Instant::now();
    for line in lines {
        framer.frame_lines_with(
            black_box(line),
            MessageMode::Text,
            compressor.as_mut(),
            &mut out,
        );
        wire += out.len();
        out.clear();
    }
    let ns = start.elapsed().as_nanos() as f64 / lines.len() as f64;
    (wire, ns)
}

/// The uncompressed pass of `--once` (a function of its own for callgrind).
#[inline(never)]
fn once_uncompressed(lines: &[Vec<u8>]) -> usize {
    run(lines, None).0
}

/// The defaults' pass of `--once`.
#[inline(never)]
fn once_defaults(lines: &[Vec<u8>], settings: &(Settings, &[u8])) -> usize {
    run(lines, Some(settings)).0
}

fn main() {
    let lines = burst();
    if std::env::args().any(|a| a == "--once") {
        let default = Settings {
            enabled: true,
            ..Settings::default()
        };
        let browser: &[u8] = b"permessage-deflate; client_max_window_bits";
        let plain = once_uncompressed(&lines);
        let compressed = once_defaults(&lines, &(default, browser));
        println!(
            "{} lines: uncompressed {plain} B, defaults {compressed} B ({:.1}%)",
            lines.len(),
            100.0 * compressed as f64 / plain as f64
        );
        return;
    }
    let raw: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "burst: {} lines, {} bytes of IRC ({:.1} per line); {NICKS} nicks, 1 channel",
        lines.len(),
        raw,
        raw as f64 / lines.len() as f64
    );
    let rounds = 5;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain, _) = run(&lines, None);
    let plain_ns = median((0..rounds).map(|_| run(&lines, None).1).collect());
    println!(
        "\n{:<44} {:>10} {:>8} {:>9}",
        "setting", "wire B", "of plain", "ns/line"
    );
    println!(
        "{:<44} {:>10} {:>8} {:>9.0}",
        "uncompressed", plain, "100%", plain_ns
    );
    let default = Settings {
        enabled: true,
        ..Settings::default()
    };
    let browser: &[u8] = b"permessage-deflate; client_max_window_bits";
    let no_takeover: &[u8] = b"permessage-deflate; server_no_context_takeover";
    let setting = |window_bits, hash_bits| Settings {
        window_bits,
        hash_bits,
        ..default
    };
    let cases = [
        ("defaults (window 12, hash 10)", (default, browser)),
        ("window 9, hash 8", (setting(9, 8), browser)),
        ("window 11, hash 10", (setting(11, 10), browser)),
        ("window 12, hash 12", (setting(12, 12), browser)),
        ("window 13, hash 11", (setting(13, 11), browser)),
        ("window 15, hash 14", (setting(15, 14), browser)),
        (
            "defaults, server_no_context_takeover",
            (default, no_takeover),
        ),
    ];
    for (name, settings) in cases {
        let (wire, _) = run(&lines, Some(&settings));
        let ns = median(
            (0..rounds)
                .map(|_| run(&lines, Some(&settings)).1)
                .collect(),
        );
        println!(
            "{:<44} {:>10} {:>7.1}% {:>9.0}",
            name,
            wire,
            100.0 * wire as f64 / plain as f64,
            ns
        );
    }
    println!("\nns/line: median of {rounds} passes over the burst through one connection's framer (and compressor), this machine.");
}
