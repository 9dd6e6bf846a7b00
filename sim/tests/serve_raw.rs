//! `xensim serve` spoken to over a raw unix socket: malformed frames (unknown type, missing
//! NUL, unknown transaction, a length over `XENSTORE_PAYLOAD_MAX`) get Xen's error reply
//! or a clean disconnect, never a crash, and other clients keep working; a watch set by one
//! client fires on another's write; bad command lines exit 2 with a clear message. Needs no
//! Xen client, so it always runs.

mod serve_support;

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    use crate::serve_support::{assert_stopped_and_replays, scratch, text, ServeProcess};

    const XS_READ: u32 = 2;
    const XS_WATCH: u32 = 4;
    const XS_WRITE: u32 = 11;
    const XS_WATCH_EVENT: u32 = 15;
    const XS_ERROR: u32 = 16;
    /// One past the last 4.17 type (`XS_TYPE_COUNT` = 23).
    const XS_TYPE_UNKNOWN: u32 = 99;
    /// `XENSTORE_PAYLOAD_MAX` + 1.
    const LEN_OVER_MAX: u32 = 4097;
    /// Long enough for a loaded CI machine, short enough to fail a hang quickly.
    const READ_TIMEOUT: Duration = Duration::from_secs(20);

    fn frame(msg_type: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("small payload");
        let mut bytes = Vec::new();
        for word in [msg_type, req_id, tx_id, len] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(payload);
        bytes
    }

    fn connect(socket: &Path) -> UnixStream {
        let stream = UnixStream::connect(socket).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream
    }

    /// (type, req_id, tx_id, payload) of the next frame.
    fn reply(stream: &mut UnixStream) -> (u32, u32, u32, Vec<u8>) {
        let mut header = [0u8; 16];
        stream.read_exact(&mut header).expect("reply header");
        let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        let mut payload = vec![0u8; usize::try_from(word(12)).expect("len")];
        stream.read_exact(&mut payload).expect("reply payload");
        (word(0), word(4), word(8), payload)
    }

    fn send(stream: &mut UnixStream, bytes: &[u8]) {
        stream.write_all(bytes).expect("send");
    }

    #[test]
    fn malformed_frames_get_xen_errors_or_a_disconnect_and_others_keep_working() {
        let server = ServeProcess::start("raw", "scenarios/quickstart.toml", &[]);
        let mut bad = connect(&server.socket);
        let mut good = connect(&server.socket);
        send(&mut bad, &frame(XS_TYPE_UNKNOWN, 1, 0, b"/tool\0"));
        assert_eq!(reply(&mut bad), (XS_ERROR, 1, 0, b"ENOSYS\0".to_vec()));
        send(&mut bad, &frame(XS_READ, 2, 0, b"/tool"));
        assert_eq!(reply(&mut bad), (XS_ERROR, 2, 0, b"EINVAL\0".to_vec()));
        send(&mut bad, &frame(XS_READ, 3, 77, b"/tool\0"));
        assert_eq!(reply(&mut bad), (XS_ERROR, 3, 77, b"ENOENT\0".to_vec()));
        // Split across writes: the server reassembles the frame.
        let read = frame(XS_READ, 4, 0, b"/tool/xenstored\0");
        send(&mut good, &read[..7]);
        send(&mut good, &read[7..]);
        assert_eq!(reply(&mut good), (XS_READ, 4, 0, Vec::new()));
        let mut oversized = frame(XS_READ, 5, 0, b"");
        oversized[12..16].copy_from_slice(&LEN_OVER_MAX.to_le_bytes());
        send(&mut bad, &oversized);
        let mut rest = Vec::new();
        let closed = bad.read_to_end(&mut rest);
        assert!(
            closed.is_ok() || rest.is_empty(),
            "no reply to an oversized frame"
        );
        assert!(
            rest.is_empty(),
            "cxenstored drops the socket without a reply: {rest:?}"
        );
        send(&mut good, &frame(XS_READ, 6, 0, b"/tool\0"));
        assert_eq!(reply(&mut good), (XS_READ, 6, 0, Vec::new()));
        let trace = server.trace.clone();
        let output = server.stop();
        assert_stopped_and_replays(&output, &trace);
    }

    #[test]
    fn watch_on_one_client_fires_on_another_clients_write() {
        let server = ServeProcess::start("watch", "scenarios/quickstart.toml", &[]);
        let mut watcher = connect(&server.socket);
        let mut writer = connect(&server.socket);
        send(&mut watcher, &frame(XS_WATCH, 1, 0, b"/w\0tok\0"));
        assert_eq!(reply(&mut watcher), (XS_WATCH, 1, 0, b"OK\0".to_vec()));
        let initial = (XS_WATCH_EVENT, 0, 0, b"/w\0tok\0".to_vec());
        assert_eq!(reply(&mut watcher), initial);
        send(&mut writer, &frame(XS_WRITE, 9, 0, b"/w/x\0v"));
        assert_eq!(reply(&mut writer), (XS_WRITE, 9, 0, b"OK\0".to_vec()));
        let fired = (XS_WATCH_EVENT, 0, 0, b"/w/x\0tok\0".to_vec());
        assert_eq!(reply(&mut watcher), fired);
        let trace = server.trace.clone();
        drop(watcher);
        let output = server.stop();
        assert_stopped_and_replays(&output, &trace);
    }

    #[test]
    fn running_timeline_session_replays() {
        let extra = ["--run", "--at", "50ms"];
        let server = ServeProcess::start("run", "scenarios/quickstart.toml", &extra);
        let mut c = connect(&server.socket);
        send(&mut c, &frame(XS_WRITE, 1, 0, b"/r/a\0v"));
        assert_eq!(reply(&mut c), (XS_WRITE, 1, 0, b"OK\0".to_vec()));
        // Wall time passes: the timeline runs between the two requests.
        std::thread::sleep(Duration::from_millis(100));
        send(&mut c, &frame(XS_READ, 2, 0, b"/r/a\0"));
        assert_eq!(reply(&mut c), (XS_READ, 2, 0, b"v".to_vec()));
        let trace = server.trace.clone();
        let output = server.stop();
        assert_stopped_and_replays(&output, &trace);
    }

    fn serve_exit(args: &[&str]) -> (i32, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_xensim"))
            .arg("serve")
            .args(args)
            .current_dir(crate::serve_support::repo_root())
            .output()
            .expect("xensim runs");
        (output.status.code().unwrap_or(-1), text(&output.stderr))
    }

    #[test]
    fn bad_serve_arguments_exit_two_with_a_message() {
        let dir = scratch("badargs");
        let regular = dir.join("not-a-socket");
        std::fs::write(&regular, "keep me").expect("write");
        let regular = regular.to_str().expect("utf-8 path");
        let sock = dir.join("s.sock");
        let sock = sock.to_str().expect("utf-8 path");
        let q = "scenarios/quickstart.toml";
        let (rc, err) = serve_exit(&[q, "--xenstore-socket", regular]);
        assert_eq!((rc, err.contains("is not a socket")), (2, true), "{err}");
        assert_eq!(
            std::fs::read_to_string(regular).ok().as_deref(),
            Some("keep me")
        );
        let (rc, err) = serve_exit(&[q, "--xenstore-socket", sock, "--at", "99s"]);
        assert_eq!(
            (rc, err.contains("past the scenario's duration")),
            (2, true),
            "{err}"
        );
        let (rc, err) = serve_exit(&[q, "--xenstore-socket", sock, "--at", "soon"]);
        assert_eq!((rc, err.contains("--at soon")), (2, true), "{err}");
        let (rc, err) = serve_exit(&[q, "--xenstore-socket", sock, "--host", "nosuch"]);
        assert_eq!((rc, err.contains("no such host")), (2, true), "{err}");
        let long = format!("{}/{}.sock", dir.display(), "x".repeat(120));
        let (rc, err) = serve_exit(&[q, "--xenstore-socket", &long]);
        assert_eq!((rc, err.contains("at most 107 bytes")), (2, true), "{err}");
        let (rc, err) = serve_exit(&["scenarios/nosuch.toml", "--xenstore-socket", sock]);
        assert_eq!(rc, 2, "{err}");
        let (rc, err) = serve_exit(&[q]);
        assert_eq!((rc, err.contains("--xenstore-socket")), (2, true), "{err}");
        assert!(
            !Path::new(sock).exists(),
            "no socket left behind by a refused start"
        );
    }
}
