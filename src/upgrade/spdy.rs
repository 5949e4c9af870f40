//! SPDY/3.1 framing, as much of it as a client of upstream's streaming servers (the kubelet's, and
//! the runtime's behind it) needs: frames read whole, and the frames a client writes (SYN_STREAM,
//! data, PING answers). No flow control: upstream's SPDY (moby/spdystream) neither sends nor
//! honours WINDOW_UPDATE.
//!
//! Header blocks are a zlib stream that runs across the connection's frames. This side only needs
//! to write its own (the server's replies carry nothing a remotecommand client reads, so their
//! blocks are skipped, not inflated), and writes them as stored deflate blocks: a valid zlib stream
//! without the SPDY dictionary (a reader only applies the dictionary when the stream's header asks
//! for it), so no compressor is needed for the few dozen bytes of a stream's headers.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

const VERSION: u16 = 3;
const CONTROL: u32 = 0x8000_0000;
/// The largest payload a frame's 24-bit length can hold.
const MAX_PAYLOAD: usize = 0x00FF_FFFF;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;

/// The flag that ends a stream's direction (data and control frames alike).
pub const FLAG_FIN: u8 = 0x01;

/// A frame as read.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Data {
        stream: u32,
        flags: u8,
        data: Bytes,
    },
    Control {
        kind: u16,
        flags: u8,
        payload: Bytes,
    },
}

impl Frame {
    /// The stream a frame is about: data frames, and the control frames whose payload starts with
    /// a stream id (SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS).
    pub fn stream(&self) -> Option<u32> {
        match self {
            Frame::Data { stream, .. } => Some(*stream),
            Frame::Control { kind, payload, .. }
                if matches!(*kind, SYN_STREAM | SYN_REPLY | RST_STREAM | HEADERS) =>
            {
                payload
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7FFF_FFFF)
            }
            Frame::Control { .. } => None,
        }
    }

    /// Whether the frame ends its stream's direction from the sender: FIN on data, SYN_REPLY or
    /// HEADERS, and any RST_STREAM.
    pub fn ends_stream(&self) -> bool {
        match self {
            Frame::Data { flags, .. } => flags & FLAG_FIN != 0,
            Frame::Control { kind, flags, .. } => {
                *kind == RST_STREAM
                    || (matches!(*kind, SYN_REPLY | HEADERS) && flags & FLAG_FIN != 0)
            }
        }
    }
}

/// Reads one frame; `None` at a clean end of the connection (between frames).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    let payload = Bytes::from(payload);
    Ok(Some(if first & CONTROL != 0 {
        Frame::Control {
            kind: (first & 0xFFFF) as u16,
            flags,
            payload,
        }
    } else {
        Frame::Data {
            stream: first,
            flags,
            data: payload,
        }
    }))
}

/// Writes a client's frames; it keeps the one piece of connection state writing needs, whether the
/// header blocks' zlib stream has begun.
#[derive(Default)]
pub struct Writer {
    headers_begun: bool,
}

impl Writer {
    /// A SYN_STREAM opening `stream` (odd, increasing: a client's) with `headers` (names lowercase,
    /// as SPDY/3 requires).
    pub fn syn_stream(&mut self, stream: u32, headers: &[(&str, &str)]) -> Bytes {
        let block = self.header_block(headers);
        let mut out = BytesMut::with_capacity(18 + block.len());
        control_head(&mut out, SYN_STREAM, 0, 10 + block.len());
        out.put_u32(stream & 0x7FFF_FFFF);
        out.put_u32(0); // associated-to stream
        out.put_u16(0); // priority 0 (highest) and slot 0, as upstream's client
        out.put_slice(&block);
        out.freeze()
    }

    /// The header block of `headers`: the SPDY/3 name/value block, in stored deflate blocks of the
    /// connection's zlib stream (its two-byte zlib header before the first), flushed.
    fn header_block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 7);
        if !self.headers_begun {
            // CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (no dictionary; 0x7801 % 31 == 0).
            out.extend_from_slice(&[0x78, 0x01]);
            self.headers_begun = true;
        }
        for chunk in raw.chunks(usize::from(u16::MAX)) {
            // BFINAL 0, BTYPE 00 (stored): the stream goes on in the next frame's block.
            let len = chunk.len() as u16;
            out.push(0);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        // A sync flush's empty stored block, as a compressor's flush ends each block: a reader
        // (Go's flate) hands out what it has inflated only on reaching it.
        out.extend_from_slice(&[0, 0, 0, 0xFF, 0xFF]);
        out
    }
}

/// Data frames carrying `data` on `stream`, the last with FIN when `fin` (one empty frame for a
/// bare FIN).
pub fn data(stream: u32, data: &[u8], fin: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 8);
    let mut chunks = data.chunks(MAX_PAYLOAD).peekable();
    if chunks.peek().is_none() {
        data_frame(&mut out, stream, &[], fin);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        data_frame(&mut out, stream, chunk, fin && last);
    }
    out.freeze()
}

fn data_frame(out: &mut BytesMut, stream: u32, chunk: &[u8], fin: bool) {
    out.put_u32(stream & 0x7FFF_FFFF);
    out.put_u32((u32::from(if fin { FLAG_FIN } else { 0 }) << 24) | chunk.len() as u32);
    out.put_slice(chunk);
}

/// A PING frame with `payload` (the 4-byte id): how a peer's ping is answered.
pub fn ping(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + payload.len());
    control_head(&mut out, PING, 0, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// Whether a PING (its payload) was sent by the server: servers use even ids, clients odd.
pub fn is_peer_ping(payload: &[u8]) -> bool {
    payload.len() == 4 && payload[3] & 1 == 0
}

fn control_head(out: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    out.put_u32(CONTROL | (u32::from(VERSION) << 16) | u32::from(kind));
    out.put_u32((u32::from(flags) << 24) | (len as u32 & 0x00FF_FFFF));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflates a stored-blocks-only deflate body (what [`Writer::header_block`] writes).
    fn unstore(mut b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !b.is_empty() {
            assert_eq!(b[0], 0, "a non-final stored block");
            let len = u16::from_le_bytes([b[1], b[2]]) as usize;
            let nlen = u16::from_le_bytes([b[3], b[4]]);
            assert_eq!(nlen, !(len as u16));
            out.extend_from_slice(&b[5..5 + len]);
            b = &b[5 + len..];
        }
        out
    }

    #[tokio::test]
    async fn syn_stream_is_read_back_with_its_headers() {
        let mut w = Writer::default();
        let first = w.syn_stream(1, &[("streamType", "error")]);
        let second = w.syn_stream(3, &[("streamtype", "stdin")]);
        let mut wire = [first.as_ref(), second.as_ref()].concat();
        wire.extend_from_slice(&data(3, b"hi", true));
        let mut r = wire.as_slice();
        let Some(Frame::Control {
            kind,
            flags,
            payload,
        }) = read_frame(&mut r).await.unwrap()
        else {
            panic!("a control frame")
        };
        assert_eq!((kind, flags), (SYN_STREAM, 0));
        assert_eq!(&payload[..4], &1u32.to_be_bytes());
        // zlib header, then the block: 1 pair, "streamtype" (lowercased), "error".
        assert_eq!(&payload[10..12], &[0x78, 0x01]);
        let block = unstore(&payload[12..]);
        assert!(
            payload.ends_with(&[0, 0, 0, 0xFF, 0xFF]),
            "ends with a sync flush"
        );
        let mut want = 1u32.to_be_bytes().to_vec();
        want.extend_from_slice(&10u32.to_be_bytes());
        want.extend_from_slice(b"streamtype");
        want.extend_from_slice(&5u32.to_be_bytes());
        want.extend_from_slice(b"error");
        assert_eq!(block, want);
        // The second block goes on in the same zlib stream: no second header.
        let second = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!(second.stream(), Some(3));
        let Frame::Control { payload, .. } = &second else {
            panic!("a control frame")
        };
        assert_eq!(payload[10], 0);
        let d = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!(
            d,
            Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hi")
            }
        );
        assert!(d.ends_stream());
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_bare_fin_and_pings() {
        let fin = data(5, b"", true);
        assert_eq!(fin.as_ref(), &[0, 0, 0, 5, 1, 0, 0, 0]);
        let p = ping(&[0, 0, 0, 2]);
        let frame = read_frame(&mut p.as_ref()).await.unwrap().unwrap();
        assert!(matches!(frame, Frame::Control { kind: PING, .. }));
        assert_eq!(frame.stream(), None);
        assert!(is_peer_ping(&[0, 0, 0, 2]) && !is_peer_ping(&[0, 0, 0, 1]));
        // A frame cut short is an error, not a clean end.
        assert!(read_frame(&mut &fin[..5]).await.is_err());
    }
}
