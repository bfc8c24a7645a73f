//! `application/grpc-web-text` bodies: the binary gRPC-Web stream in base64 (standard
//! alphabet, padded). Decoding streams: a chunk may end anywhere, even inside a base64
//! quantum, and a body may be several padded runs one after the other (clients encode each
//! message on its own). Encoding pads every chunk, so a streamed message is never held
//! back waiting for the bytes of the next one; decoders of gRPC-Web text (the official
//! JavaScript client's among them) read padded runs back to back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

/// Why a text body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    #[error("the grpc-web-text body is not base64: {0}")]
    NotBase64(String),
    #[error("the grpc-web-text body ends inside a base64 quantum ({0} characters left over)")]
    Truncated(usize),
}

/// Decodes a grpc-web-text body chunk by chunk.
#[derive(Debug, Default)]
pub struct TextDecoder {
    /// Characters of an unfinished quantum (at most 3).
    pending: Vec<u8>,
}

impl TextDecoder {
    /// The bytes `chunk` completes (possibly none: it may only start a quantum).
    pub fn decode(&mut self, chunk: &[u8]) -> Result<Bytes, TextError> {
        let mut input = std::mem::take(&mut self.pending);
        input.extend(chunk.iter().filter(|b| !b.is_ascii_whitespace()));
        let whole = input.len() - input.len() % 4;
        self.pending = input.split_off(whole);
        let mut out = Vec::with_capacity(whole / 4 * 3);
        // A padded quantum ends a run; the next run starts after it.
        let mut run_start = 0;
        for quantum_end in (4..=whole).step_by(4) {
            let padded = input[quantum_end - 1] == b'=';
            if padded || quantum_end == whole {
                let run = &input[run_start..quantum_end];
                STANDARD
                    .decode_vec(run, &mut out)
                    .map_err(|err| TextError::NotBase64(err.to_string()))?;
                run_start = quantum_end;
            }
        }
        Ok(Bytes::from(out))
    }

    /// Checks the body ended on a quantum boundary.
    pub fn finish(&self) -> Result<(), TextError> {
        match self.pending.len() {
            0 => Ok(()),
            left => Err(TextError::Truncated(left)),
        }
    }
}

/// One chunk of a grpc-web-text response: `bytes` in padded base64.
pub fn encode(bytes: &[u8]) -> Bytes {
    Bytes::from(STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(text: &str, piece: usize) -> Result<Vec<u8>, TextError> {
        let mut decoder = TextDecoder::default();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(piece) {
            out.extend_from_slice(&decoder.decode(chunk)?);
        }
        decoder.finish()?;
        Ok(out)
    }

    #[test]
    fn chunks_split_anywhere_decode_to_the_same_bytes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = STANDARD.encode(&bytes);
        for piece in 1..=9 {
            assert_eq!(
                decode_in_pieces(&text, piece),
                Ok(bytes.clone()),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn padded_runs_back_to_back_decode_as_one_stream() {
        // Two messages each encoded with its own padding, as clients send them.
        let text = format!("{}{}", STANDARD.encode(b"a"), STANDARD.encode(b"bcde"));
        assert_eq!(text, "YQ==YmNkZQ==");
        for piece in 1..=5 {
            assert_eq!(decode_in_pieces(&text, piece), Ok(b"abcde".to_vec()));
        }
    }

    #[test]
    fn a_body_cut_inside_a_quantum_is_an_error_naming_what_is_left() {
        assert_eq!(decode_in_pieces("YWJj YQ", 3), Err(TextError::Truncated(2)));
    }

    #[test]
    fn characters_outside_base64_are_an_error() {
        let err = decode_in_pieces("YW!j", 4).expect_err("not base64");
        assert!(matches!(err, TextError::NotBase64(_)), "{err:?}");
    }

    #[test]
    fn each_encoded_chunk_is_padded_on_its_own() {
        assert_eq!(encode(b"a"), "YQ==");
        assert_eq!(encode(b"abc"), "YWJj");
        assert_eq!(encode(b""), "");
    }
}
