//! Fuzz-style: random byte streams from several socket clients, chunked at random, through
//! the serve path's frame handling (`serve::frame`) into the session and the core, with
//! no socket. Nothing panics, every frame xenstored writes back is whole and within
//! `XENSTORE_PAYLOAD_MAX`, and the recorded session replays to the same hash.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use proptest::collection::vec;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
    use proptest::prelude::{ProptestConfig, Strategy};
    use xensim::record::Recorder;
    use xensim::run::platform::XsOut;
    use xensim::serve::frame::RequestSplitter;
    use xensim::serve::session::{replay, ServeSession, SessionOptions};

    /// Clients in one case (numbers 1..=CLIENTS).
    const CLIENTS: u32 = 3;
    /// `XENSTORE_PAYLOAD_MAX`.
    const PAYLOAD_MAX: usize = 4096;

    /// What one step of a case does.
    #[derive(Debug, Clone)]
    enum Step {
        /// Client sends these bytes.
        Send(u32, Vec<u8>),
        /// Client hangs up.
        Hangup(u32),
    }

    fn frame(msg_type: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let mut bytes = Vec::new();
        for word in [msg_type, req_id, tx_id, len] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Payloads that reach the handlers: paths, values, watch tokens, junk.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"/f/a\0".to_vec()),
            Just(b"/f/a\0value".to_vec()),
            Just(b"/f\0tok\0".to_vec()),
            Just(b"T\0".to_vec()),
            Just(b"\0".to_vec()),
            Just(b"rel/x\0".to_vec()),
            Just(b"/f/a\0n0\0r1\0".to_vec()),
            vec(any::<u8>(), 0..40),
        ]
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let whole = (0u32..30, any::<u32>(), 0u32..3, payload())
            .prop_map(|(t, r, tx, p)| frame(t, r, tx, &p));
        prop_oneof![
            4 => whole,
            1 => vec(any::<u8>(), 0..48),
            1 => (any::<u32>()).prop_map(|len| frame(2, 1, 0, &[]).into_iter()
                .take(12).chain(len.to_le_bytes()).collect()),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (1..=CLIENTS, bytes()).prop_map(|(c, b)| Step::Send(c, b)),
            1 => (1..=CLIENTS).prop_map(Step::Hangup),
        ]
    }

    /// Every frame in `bytes` is whole and within the payload limit.
    fn frames_are_whole(bytes: &[u8]) -> bool {
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(len) = rest.get(12..16) else {
                return false;
            };
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > PAYLOAD_MAX || rest.len() < 16 + len {
                return false;
            }
            rest = &rest[16 + len..];
        }
        true
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_client_streams_never_break_the_server_and_replay(
            steps in vec(step(), 1..40)
        ) {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml");
            let scenario = xensim::app::load(&path, None, false).expect("quickstart loads");
            let opts = SessionOptions { host: 0, at_ns: 0, run: false };
            let mut session = ServeSession::start(&scenario, opts, Recorder::capturing())
                .expect("session starts");
            let mut splitters: BTreeMap<u32, RequestSplitter> = BTreeMap::new();
            let mut next_number = CLIENTS + 1;
            let mut numbers: BTreeMap<u32, u32> = (1..=CLIENTS).map(|c| (c, c)).collect();
            for step in steps {
                let out = match step {
                    Step::Send(slot, bytes) => {
                        let number = numbers[&slot];
                        let splitter = splitters.entry(number).or_default();
                        splitter.push(&bytes);
                        let mut out = Vec::new();
                        while let Some(request) = splitter.next_request() {
                            let request = request.to_vec();
                            out.extend(session.request(number, &request).expect("request"));
                        }
                        out
                    }
                    Step::Hangup(slot) => {
                        let number = numbers[&slot];
                        splitters.remove(&number);
                        numbers.insert(slot, next_number);
                        next_number += 1;
                        session.hangup(number).expect("hangup")
                    }
                };
                for item in &out {
                    if let XsOut::Send { bytes, .. } = item {
                        prop_assert!(frames_are_whole(bytes), "torn output {bytes:?}");
                    }
                }
            }
            let outcome = session.finish().expect("finish");
            let records = outcome.captured_records;
            let replayed = replay(&scenario, records).expect("replay runs");
            prop_assert_eq!(replayed.divergence, None);
            prop_assert_eq!(replayed.hash, outcome.hash);
        }
    }
}
