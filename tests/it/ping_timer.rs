//! InspIRCd's own ping timer (`<connect pingfreq>`) and WebSocket users. InspIRCd 3
//! sends an IRC PING through the module like any line. InspIRCd 4 first asks the I/O
//! hook (`IOHook::Ping()`): with `nativeping` (its default) the module sends a ping
//! frame instead, and any frame from the client counts as the answer. Stock 4.7 queues
//! that frame but does not write it, so an idle web user who would answer is timed out.

use std::time::Instant;

use crate::common::*;

/// Short enough for a test, long enough that a loaded machine answers in time.
const PINGFREQ: &str = r#"pingfreq="4""#;

/// Two rounds of the server's ping, each answered at once: the user stays.
fn answer_two_pings(conn: &mut Client) {
    for round in 1..=2 {
        match dialect() {
            Dialect::V3 => {
                let ping = conn
                    .expect_frame(&format!("IRC PING {round}"), |f| {
                        f.opcode == OP_TEXT && f.payload.starts_with(b"PING ")
                    })
                    .expect("the awaited line or frame");
                let token = show(&ping.payload)["PING ".len()..].to_string();
                conn.send_text(&format!("PONG {token}")).expect("send");
            }
            Dialect::V4 => {
                let ping = conn
                    .expect_frame(&format!("ping frame {round}"), |f| {
                        assert!(
                            !(f.opcode == OP_TEXT && f.payload.starts_with(b"PING ")),
                            "an IRC PING although nativeping is on: {f:?}"
                        );
                        f.opcode == OP_PING
                    })
                    .expect("the awaited line or frame");
                conn.send_frame(true, OP_PONG, &ping.payload).expect("send");
            }
        }
    }
}

fn pinged_idle_user_who_answers_stays(m: Module) {
    // pinginterval far off, so that only the server's timer pings.
    let server = Server::start(
        Conf::new(m)
            .websocket(r#"pinginterval="300s""#)
            .connect_attrs(PINGFREQ),
    );
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("answers").expect("registration");
    answer_two_pings(&mut conn);
    conn.send_text("PING :still-here").expect("send");
    conn.expect_frame("the PONG to our PING", |f| {
        show(&f.payload).contains("PONG") && show(&f.payload).contains("still-here")
    })
    .expect("the PONG to our PING");
}

#[test]
fn pinged_idle_user_who_answers_stays_ours() {
    pinged_idle_user_who_answers_stays(Module::Ours);
}

/// Stock on InspIRCd 3 sends the IRC PING as any line, and the user who answers stays;
/// on 4 it does not write its ping frame: see
/// [`stock_v4_times_out_idle_users_who_would_answer`].
#[test]
fn pinged_idle_user_stock() {
    if dialect() == Dialect::V3 {
        pinged_idle_user_who_answers_stays(Module::Stock);
    } else {
        stock_v4_times_out_idle_users_who_would_answer();
    }
}

/// Stock 4.7's ping frame waits in the queue until something else is written: the
/// client, which answers every ping frame it gets, first sees it with the ping-timeout
/// ERROR.
fn stock_v4_times_out_idle_users_who_would_answer() {
    let server = Server::start(Conf::new(Module::Stock).connect_attrs(PINGFREQ));
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("waits").expect("registration");
    let deadline = Instant::now() + 3 * TIMEOUT;
    loop {
        match conn.frame_until(deadline) {
            Ok(f) if f.opcode == OP_PING => {
                conn.send_frame(true, OP_PONG, &f.payload).expect("send")
            }
            Ok(f) if f.opcode == OP_TEXT && f.payload.starts_with(b"ERROR") => {
                assert!(show(&f.payload).contains("Ping timeout"), "{f:?}");
                return;
            }
            Ok(_) => {}
            Err(e) if e.is_closed() => panic!("closed without a ping-timeout ERROR"),
            Err(e) if e.is_timeout() => {
                panic!("stock 4 did not time the user out (was its ping written?)")
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A client that chats but never answers the server's ping: InspIRCd 3 counts only an
/// IRC PONG, so it times the user out; on InspIRCd 4 with `nativeping` the client never
/// sees an IRC PING to answer, and any frame counts (as with stock 4.7), so it stays.
#[test]
fn chatting_without_answering_the_servers_ping_ours() {
    let server = Server::start(
        Conf::new(Module::Ours)
            .websocket(r#"pinginterval="300s""#)
            .connect_attrs(PINGFREQ),
    );
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("chatty").expect("registration");
    match dialect() {
        Dialect::V3 => {
            conn.expect_frame("the server's IRC PING", |f| f.payload.starts_with(b"PING "))
                .expect("the server's IRC PING");
            conn.send_text("PRIVMSG chatty :not a PONG").expect("send");
            let error = conn
                .expect_frame("the ping timeout", |f| f.payload.starts_with(b"ERROR"))
                .expect("the ping timeout");
            assert!(show(&error.payload).contains("Ping timeout"), "{error:?}");
        }
        Dialect::V4 => {
            for round in 1..=2 {
                conn.expect_frame(&format!("the server's ping frame {round}"), |f| {
                    f.opcode == OP_PING
                })
                .expect("the awaited line or frame");
                conn.send_text(&format!("PRIVMSG chatty :round {round}"))
                    .expect("send");
            }
            conn.send_text("PING :still-here").expect("send");
            conn.expect_frame("the PONG to our PING", |f| {
                show(&f.payload).contains("still-here")
            })
            .expect("the PONG to our PING");
        }
    }
}
