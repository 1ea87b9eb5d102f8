//! Generated channel chat, the same on every run: the text of the compression
//! benchmark (`benches/compression.rs`) and of loadbench's realistic fanout, so that
//! both measure the same kind of lines.
//!
//! 200 nicks built from syllables, each with an ident and a host in InspIRCd's formats
//! (a cloak `xxxxxxxx.yyyyyyyy.example.net`, or an IP cloak), in one channel. 90% of
//! lines are `PRIVMSG #channel :text`, the rest JOIN, PART, QUIT and NICK, with the
//! server's own `:nick!ident@host` prefix. Message text is 1 to 24 words drawn from a
//! 400-word vocabulary by a Zipf-like rank, with an occasional URL, a nick addressed at
//! the start and punctuation: chat lines of about 40 characters on average.

use crate::rng::Rng;

/// Nicks in the channel.
pub const NICKS: usize = 200;

/// The state [`burst`] and [`Chatter`] start from.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

const SYLLABLES: [&str; 24] = [
    "ka", "ri", "to", "mi", "zen", "lo", "dar", "vex", "no", "sha", "qu", "el", "bo", "tan", "ix",
    "ra", "mo", "fy", "gr", "ul", "pe", "sk", "wo", "je",
];

const WORDS: &str = "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she or an will my one all would there their what so up out if about who get which go me when make can like time no just him know take people into year your good some could them see other than then now look only come its over think also back after use two how our work first well way even new want because any these give day most us is was are were been has had did said does got yeah ok lol hey hi thanks please sorry yes sure maybe really right still here today tomorrow tonight again never always something anything nothing everything someone anyone channel server irc client network bot nick join part quit message link web browser page chat room topic mode op voice ban kick user host ping pong lag split connect connected disconnect reconnect config module update version build test bug fix patch release code commit merge branch issue problem error works working broken crash log logs reboot restart install package debian linux windows mac phone laptop desktop keyboard mouse screen music game play played playing watch movie show episode season weekend morning evening night coffee tea food lunch dinner breakfast beer pizza home office job meeting call email mail send sent read write wrote question answer idea plan think thought guess true false big small long short fast slow hot cold nice cool great awesome bad worse best better weird funny interesting boring busy free tired happy sad glad angry friend friends family kids dog cat weather rain snow sun wind cloud city town country world news post article video picture photo file files folder disk memory cpu ram speed cost price money pay buy sell shop store car bus train plane trip travel holiday week month hour minute second old young man woman guy girl boy thing things stuff place part point case fact hand eye life world state word number group area line end side kind head house service friend power hour game line members name face percent";

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[rng.below(list.len())]
}

#[derive(Debug)]
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

/// `lines` lines of the channel as one of its members receives them, each with its CR
/// LF.
pub fn burst(lines: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::from_state(SEED);
    let words: Vec<&str> = WORDS.split(' ').collect();
    let users = users(&mut rng);
    (0..lines)
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

/// Message texts one after the other, as a client would send them: [`burst`]'s
/// PRIVMSG text without the prefix the server adds.
#[derive(Debug)]
pub struct Chatter {
    rng: Rng,
    words: Vec<&'static str>,
    users: Vec<User>,
}

impl Default for Chatter {
    fn default() -> Chatter {
        let mut rng = Rng::from_state(SEED);
        let users = users(&mut rng);
        Chatter {
            rng,
            words: WORDS.split(' ').collect(),
            users,
        }
    }
}

impl Chatter {
    /// The next message text.
    pub fn next_text(&mut self) -> String {
        text(&mut self.rng, &self.words, &self.users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_chat_on_every_run() {
        let (a, b) = (burst(500), burst(500));
        assert_eq!(a, b);
        let bytes: usize = a.iter().map(Vec::len).sum();
        // Chat lines of about a hundred bytes with their prefixes.
        assert!(
            (60..140).contains(&(bytes / a.len())),
            "{}",
            bytes / a.len()
        );
        assert!(a
            .iter()
            .all(|l| l.ends_with(b"\r\n") && l.starts_with(b":")));
        let mut chat = Chatter::default();
        let texts: Vec<String> = (0..100).map(|_| chat.next_text()).collect();
        assert!(texts
            .iter()
            .all(|t| !t.is_empty() && !t.contains(['\r', '\n'])));
        assert_eq!(
            texts,
            (0..100)
                .map({
                    let mut again = Chatter::default();
                    move |_| again.next_text()
                })
                .collect::<Vec<_>>()
        );
    }
}
