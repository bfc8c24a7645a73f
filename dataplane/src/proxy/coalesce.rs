//! Write coalescing for HTTP/2 connections: many RPCs' frames leave in one `writev` instead
//! of one or two each.
//!
//! Why: h2 writes a connection's frames as soon as its task runs, and a DATA frame of 256
//! bytes or more forces a write before the next frame is encoded. Under load one RPC then
//! costs the proxy about two socket writes per direction, and on loopback each write also
//! runs the receiver's TCP processing on the sender's core: the largest share of the proxy's
//! CPU per call. Envoy writes once per event-loop turn per connection.
//!
//! How: [`CoalescedWrites`] takes every write into a buffer. A flush that follows new writes
//! does not reach the socket: it wakes the connection's task and returns. The task is then
//! polled again after the other tasks ready now (the streams of this turn add their frames
//! meanwhile); h2 ends every poll with a flush, and that flush, with nothing written since
//! the last one, writes the whole buffer at once. Nothing waits longer than one turn of the
//! runtime, and a buffer past [`FLUSH_AT`] is written at once. Shutdown writes what is
//! buffered first. Large writes skip the buffer (after what is buffered), so bulk streams
//! are not copied twice.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffered bytes past which a write waits for them to reach the socket.
pub const FLUSH_AT: usize = 64 * 1024;

/// A write at least this long goes to the socket directly (after the buffered bytes).
const DIRECT_AT: usize = 16 * 1024;

/// An I/O object whose writes are gathered and sent once per runtime turn (see the module).
#[derive(Debug)]
pub struct CoalescedWrites<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` has reached `inner`.
    written: usize,
    /// Bytes were buffered since the last flush: the next flush only defers.
    wrote_since_flush: bool,
}

impl<T> CoalescedWrites<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
            wrote_since_flush: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<T: AsyncWrite + Unpin> CoalescedWrites<T> {
    /// Writes every buffered byte to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = data.iter().map(|slice| slice.len()).sum();
        if this.pending() + len > FLUSH_AT || len >= DIRECT_AT {
            ready!(this.poll_drain(cx))?;
            if len >= DIRECT_AT {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, data);
            }
        }
        for slice in data {
            this.buf.extend_from_slice(slice);
        }
        this.wrote_since_flush |= len > 0;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        // Slices are gathered here, so h2 should hand them over without copying first.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending() > 0 && this.wrote_since_flush {
            // More may come from the tasks ready now: write on the task's next poll, which
            // this wake guarantees.
            this.wrote_since_flush = false;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    /// Records each write that reaches it; accepts at most `limit` bytes per write.
    #[derive(Default)]
    struct Socket {
        writes: Vec<Vec<u8>>,
        limit: Option<usize>,
        flushes: usize,
        shut: bool,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.limit.map_or(data.len(), |limit| limit.min(data.len()));
            self.writes.push(data[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn write(io: &mut CoalescedWrites<Socket>, cx: &mut Context<'_>, data: &[u8]) {
        match Pin::new(io).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => assert_eq!(n, data.len()),
            other => panic!("write: {other:?}"),
        }
    }

    fn flush(io: &mut CoalescedWrites<Socket>, cx: &mut Context<'_>) {
        assert!(matches!(Pin::new(io).poll_flush(cx), Poll::Ready(Ok(()))));
    }

    #[test]
    fn writes_of_one_turn_reach_the_socket_in_one_write_on_the_next_poll() {
        let wakes = Arc::new(CountingWaker::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut io = CoalescedWrites::new(Socket::default());

        // One poll: two frames, a flush (h2's poll_ready), a third frame, a flush (the end).
        write(&mut io, &mut cx, b"headers+data ");
        flush(&mut io, &mut cx);
        write(&mut io, &mut cx, b"trailers ");
        flush(&mut io, &mut cx);
        assert!(io.get_ref().writes.is_empty(), "nothing written yet");
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            2,
            "the task is polled again"
        );

        // Another stream's frames arrive before that poll.
        write(&mut io, &mut cx, b"second stream");
        flush(&mut io, &mut cx);
        // The next poll has nothing new: its flush writes everything, once.
        flush(&mut io, &mut cx);
        assert_eq!(
            io.get_ref().writes,
            [b"headers+data trailers second stream".to_vec()]
        );
        assert_eq!(io.get_ref().flushes, 1);
        // Nothing buffered: a flush goes straight through, without a wake.
        let before = wakes.0.load(Ordering::SeqCst);
        flush(&mut io, &mut cx);
        assert_eq!(io.get_ref().flushes, 2);
        assert_eq!(wakes.0.load(Ordering::SeqCst), before);
    }

    #[test]
    fn a_full_buffer_is_written_before_more_is_taken_and_large_writes_go_direct() {
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&waker);
        let mut io = CoalescedWrites::new(Socket::default());
        let chunk = vec![b'a'; DIRECT_AT - 1];
        let chunks = FLUSH_AT / chunk.len();
        for _ in 0..chunks {
            write(&mut io, &mut cx, &chunk);
        }
        assert!(io.get_ref().writes.is_empty());
        write(&mut io, &mut cx, &chunk);
        assert_eq!(io.get_ref().writes.len(), 1, "the full buffer went out");
        assert_eq!(io.get_ref().writes[0].len(), chunks * chunk.len());

        let large = vec![b'b'; DIRECT_AT];
        write(&mut io, &mut cx, &large);
        let writes = &io.get_ref().writes;
        assert_eq!(
            writes.len(),
            3,
            "buffered bytes first, then the large write"
        );
        assert_eq!(writes[1], chunk);
        assert_eq!(writes[2], large);
    }

    #[test]
    fn short_socket_writes_are_resumed_and_shutdown_writes_what_is_buffered() {
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&waker);
        let mut io = CoalescedWrites::new(Socket {
            limit: Some(4),
            ..Socket::default()
        });
        write(&mut io, &mut cx, b"0123456789");
        assert!(matches!(
            Pin::new(&mut io).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        let socket = io.get_ref();
        assert_eq!(socket.writes.concat(), b"0123456789");
        assert_eq!(socket.writes.len(), 3);
        assert!(socket.shut);
    }
}
