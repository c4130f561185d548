//! Messages of protected procedure calls: a label and up to 64 words, as
//! Microkit passes in message registers.

/// Microkit passes at most 64 words each way in a protected call.
pub const MAX_MESSAGE_WORDS: usize = 64;

/// Largest label: seL4 carries 52 bits of label in a message on 64-bit
/// platforms, so every protocol keeps its labels at or below this.
pub const MAX_LABEL: u64 = (1 << 52) - 1;

/// Label of the reply a PD gives to a call it does not understand.
pub const ERROR_LABEL: u64 = MAX_LABEL;

/// Label of the empty reply a server's new incarnation gives to the call
/// its earlier incarnation took and never answered: the caller's platform
/// turns it into [`crate::CallError::PeerRestarted`]. No protocol may use
/// it for a reply of its own.
pub const PEER_RESTARTED_LABEL: u64 = MAX_LABEL - 1;

/// A protected-call message: a label and up to [`MAX_MESSAGE_WORDS`] words.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    label: u64,
    len: u8,
    words: [u64; MAX_MESSAGE_WORDS],
}

/// A message has no room for more words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageFull;

impl core::fmt::Display for MessageFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "message longer than {MAX_MESSAGE_WORDS} words")
    }
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("label", &self.label)
            .field("words", &self.words())
            .finish()
    }
}

impl Message {
    /// An empty message with `label`.
    pub const fn new(label: u64) -> Message {
        Message {
            label,
            len: 0,
            words: [0; MAX_MESSAGE_WORDS],
        }
    }

    /// A message with `label` and `words`, or `MessageFull` if there are too
    /// many words.
    pub fn with_words(label: u64, words: &[u64]) -> Result<Message, MessageFull> {
        let mut msg = Message::new(label);
        for &w in words {
            msg.push(w)?;
        }
        Ok(msg)
    }

    /// The reply to a call that was not understood.
    pub const fn error_reply() -> Message {
        Message::new(ERROR_LABEL)
    }

    /// Whether this is the reply to a call that was not understood.
    pub const fn is_error_reply(&self) -> bool {
        self.label == ERROR_LABEL
    }

    /// The label.
    pub const fn label(&self) -> u64 {
        self.label
    }

    /// The words, in order.
    pub fn words(&self) -> &[u64] {
        &self.words[..self.len as usize]
    }

    /// Word `i`, or `None` past the end.
    pub fn word(&self, i: usize) -> Option<u64> {
        self.words().get(i).copied()
    }

    /// Appends a word.
    pub fn push(&mut self, word: u64) -> Result<(), MessageFull> {
        let slot = self.words.get_mut(self.len as usize).ok_or(MessageFull)?;
        *slot = word;
        self.len += 1;
        Ok(())
    }

    /// Appends `bytes`, packed little-endian eight to a word (the last word
    /// zero-padded). The reader must know the length.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), MessageFull> {
        let needed = bytes.len().div_ceil(8);
        if self.len as usize + needed > MAX_MESSAGE_WORDS {
            return Err(MessageFull);
        }
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.push(u64::from_le_bytes(w))?;
        }
        Ok(())
    }

    /// Reads `out.len()` bytes packed from word `first` on, as written by
    /// [`Message::push_bytes`]. `None` if the message is too short.
    pub fn read_bytes(&self, first: usize, out: &mut [u8]) -> Option<()> {
        let needed = out.len().div_ceil(8);
        let words = self.words().get(first..first.checked_add(needed)?)?;
        for (chunk, w) in out.chunks_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_bounds() {
        let mut m = Message::new(7);
        m.push(1).unwrap();
        m.push_bytes(b"hello, axolotl!").unwrap();
        assert_eq!(m.words().len(), 3);
        let mut out = [0u8; 15];
        m.read_bytes(1, &mut out).unwrap();
        assert_eq!(&out, b"hello, axolotl!");
        let mut too_long = [0u8; 17];
        assert!(m.read_bytes(1, &mut too_long).is_none());
        assert!(m.read_bytes(usize::MAX, &mut out).is_none());
    }

    #[test]
    fn full_message_is_refused() {
        let mut m = Message::with_words(0, &[0; MAX_MESSAGE_WORDS]).unwrap();
        assert_eq!(m.push(1), Err(MessageFull));
        assert_eq!(Message::new(0).push_bytes(&[0; 8 * 65]), Err(MessageFull));
        assert!(Message::with_words(0, &[0; MAX_MESSAGE_WORDS + 1]).is_err());
    }
}
