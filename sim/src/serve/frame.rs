//! Cutting a socket client's byte stream into requests, one whole request per core input
//! (spec `xenstore-io.md` §1.1, §1.7: "one complete request at a time").
//!
//! A request is a 16-byte header plus exactly `len` payload bytes. A header that declares
//! `len > XENSTORE_PAYLOAD_MAX` is handed on by itself, so the core sees the protocol
//! violation and drops the client as cxenstored does (`handle_input` in
//! tools/xenstore/xenstored_core.c); nothing after it is ever handed on. Everything else
//! (an unknown type, a missing NUL, an unknown transaction) is the core's to answer.
//!
//! # Invariants
//! - Every request handed on is either a whole frame (`16 + len` bytes, `len <= 4096`) or
//!   a lone header with `len > 4096`, after which the splitter yields nothing more.
//! - How the bytes were chunked by the socket never changes the requests handed on.
//! - Buffered bytes never exceed one partial frame plus the last chunk pushed.

use hypervisor_model::xenstore::wire::{Header, HEADER_BYTES, XENSTORE_PAYLOAD_MAX};

/// Reassembles requests from the bytes one client sent.
#[derive(Debug, Default)]
pub struct RequestSplitter {
    buf: Vec<u8>,
    start: usize,
    failed: bool,
}

impl RequestSplitter {
    /// An empty splitter.
    pub fn new() -> RequestSplitter {
        RequestSplitter::default()
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole request, if one is buffered.
    pub fn next_request(&mut self) -> Option<&[u8]> {
        if self.failed {
            return None;
        }
        let rest = &self.buf[self.start..];
        let header_bytes: &[u8; HEADER_BYTES] = rest.get(..HEADER_BYTES)?.try_into().ok()?;
        let header = Header::decode(header_bytes);
        let len_bytes = usize::try_from(header.len).unwrap_or(usize::MAX);
        if len_bytes > XENSTORE_PAYLOAD_MAX {
            self.failed = true;
            let begin = self.start;
            self.start = self.buf.len();
            return Some(&self.buf[begin..begin + HEADER_BYTES]);
        }
        let frame_bytes = HEADER_BYTES + len_bytes;
        if rest.len() < frame_bytes {
            return None;
        }
        let begin = self.start;
        self.start += frame_bytes;
        assert!(self.start <= self.buf.len());
        Some(&self.buf[begin..begin + frame_bytes])
    }

    /// Bytes buffered that do not yet form a whole request.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True once an oversized header was handed on: the client is being dropped.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::RequestSplitter;
    use hypervisor_model::xenstore::wire::{Frame, MsgType};
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest, ProptestConfig};

    fn read_request(path: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        Frame::request(MsgType::Read, 7, 0, path).encode_into(&mut bytes);
        bytes
    }

    fn all_requests(splitter: &mut RequestSplitter) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(request) = splitter.next_request() {
            out.push(request.to_vec());
        }
        out
    }

    #[test]
    fn split_header_waits_for_the_rest_of_the_frame() {
        let request = read_request(b"/local\0");
        let mut splitter = RequestSplitter::new();
        splitter.push(&request[..10]);
        assert_eq!(splitter.next_request(), None);
        splitter.push(&request[10..]);
        assert_eq!(splitter.next_request(), Some(request.as_slice()));
        assert_eq!(splitter.pending_bytes(), 0);
    }

    #[test]
    fn oversized_length_hands_on_the_header_alone_and_stops() {
        // 4097 is one byte past XENSTORE_PAYLOAD_MAX.
        let mut header = read_request(b"")[..16].to_vec();
        header[12..16].copy_from_slice(&4097u32.to_le_bytes());
        let mut splitter = RequestSplitter::new();
        splitter.push(&header);
        splitter.push(&read_request(b"/\0"));
        assert_eq!(all_requests(&mut splitter), vec![header]);
        assert!(splitter.failed());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random byte streams, chunked at random points, give the same requests as the
        /// stream pushed whole, and every request is well-formed.
        #[test]
        fn chunking_never_changes_the_requests(
            stream in proptest::collection::vec(proptest::num::u8::ANY, 0..12_000),
            cuts in proptest::collection::vec(0usize..12_000, 0..20),
        ) {
            let mut whole = RequestSplitter::new();
            whole.push(&stream);
            let expected = all_requests(&mut whole);
            let mut cuts = cuts;
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut chunked = RequestSplitter::new();
            let mut got = Vec::new();
            let mut at = 0;
            for cut in cuts {
                let cut = cut.min(stream.len());
                chunked.push(&stream[at..cut.max(at)]);
                at = cut.max(at);
                got.extend(all_requests(&mut chunked));
            }
            prop_assert_eq!(&got, &expected);
            for request in &got {
                prop_assert!(request.len() >= 16);
                prop_assert!(request.len() <= 16 + 4096 || request.len() == 16);
            }
        }
    }
}
