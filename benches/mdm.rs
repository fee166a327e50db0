//! Check-in and report parsing on the real vectors, against a baseline in
//! the same run: the bare `plist` crate on the same bytes (no guard, no
//! typing). `guard` = `wire::plist::decode` alone; `typed` = the full
//! `CheckinMessage::decode` / `Report::decode`; `parse_dispatch` (check-ins)
//! = what `service::mdm` does with a check-in request before any store call:
//! route it by `Content-Type`, decode it, and turn the payload into the
//! engine's `activation::CheckinEvent` (channel, message), or into the
//! answer for the messages answered without the engine.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
#[path = "support/mod.rs"]
mod support;
use mdm_enroll::activation::{self, CertFingerprint, CheckinEvent, PushTarget};
use mdm_enroll::http::{self, MessageKind, Method, Request};
use mdm_enroll::mdm::{CheckinMessage, CheckinPayload, Report};
use mdm_enroll::wire::{Limits, plist as wire_plist};

/// The steps of `service::mdm` before its store calls (it is private, so
/// they are repeated here, one for one): `None` is a message answered
/// without the engine (or refused).
fn dispatch(request: &Request, limits: &Limits) -> Option<CheckinEvent> {
    if request.body.len() > limits.max_body_bytes || http::classify(request) != MessageKind::Checkin
    {
        return None;
    }
    let msg = CheckinMessage::decode(&request.body, limits).ok()?;
    let channel = activation::Channel {
        device_id: msg.channel.device_id().to_owned(),
        user_id: msg.channel.user_id().map(str::to_owned),
    };
    let message = match msg.payload {
        CheckinPayload::Authenticate(a) => activation::CheckinMessage::Authenticate {
            topic: a.topic,
            serial: a.serial_number,
        },
        CheckinPayload::TokenUpdate(t) => activation::CheckinMessage::TokenUpdate {
            push: PushTarget {
                topic: t.topic,
                token: t.token,
                push_magic: t.push_magic,
            },
            awaiting_configuration: t.awaiting_configuration,
        },
        CheckinPayload::CheckOut(_) => activation::CheckinMessage::CheckOut,
        _ => return None,
    };
    Some(CheckinEvent {
        identity: CertFingerprint([7; 32]),
        channel,
        message,
    })
}

fn vector(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let cases = [
        (
            "checkin/TokenUpdate.1",
            "checkin/nanomdm_TokenUpdate.1.plist",
            true,
        ),
        (
            "checkin/Authenticate.2",
            "checkin/nanomdm_Authenticate.2.plist",
            true,
        ),
        (
            "report/device_information",
            "report/zentral_device_information.plist",
            false,
        ),
        (
            "report/profile_list",
            "report/zentral_profile_list.plist",
            false,
        ),
    ];
    for (name, file, is_checkin) in cases {
        let body = vector(file);
        let name = support::group(name);
        let mut g = c.benchmark_group(&name);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("baseline_plist_crate", |b| {
            b.iter(|| plist::Value::from_reader_xml(black_box(&body[..])).unwrap())
        });
        g.bench_function("guard", |b| {
            b.iter(|| wire_plist::decode(black_box(&body), &limits).unwrap())
        });
        if is_checkin {
            g.bench_function("typed", |b| {
                b.iter(|| CheckinMessage::decode(black_box(&body), &limits).unwrap())
            });
            let mut request = Request::new(Method::Put, "/mdm/checkin");
            request
                .headers
                .push(("Content-Type".into(), http::media_type::CHECKIN.into()));
            request.body = body.clone();
            assert!(dispatch(&request, &limits).is_some(), "{name}");
            g.bench_function("parse_dispatch", |b| {
                b.iter(|| dispatch(black_box(&request), &limits).unwrap())
            });
        } else {
            g.bench_function("typed", |b| {
                b.iter(|| Report::decode(black_box(&body), &limits).unwrap())
            });
        }
        g.finish();
        support::ratio(&name, "typed", "baseline_plist_crate");
        if is_checkin {
            support::ratio(&name, "parse_dispatch", "baseline_plist_crate");
        }
    }
    // A hostile body: how fast the guard says no (20k-deep array, 140 KB).
    let deep = format!("<plist>{}", "<array>".repeat(20_000)).into_bytes();
    c.bench_function("hostile/deep_array_refused", |b| {
        b.iter(|| wire_plist::decode(black_box(&deep), &limits).unwrap_err())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
