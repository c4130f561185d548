//! Channel and child identifiers, and sets of channels.

/// Microkit allows channel ids 0..=62 in each PD.
pub const MAX_CHANNELS: u8 = 63;

/// One end of a channel, as numbered in this PD's part of system.xml.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(u8);

impl Channel {
    /// The channel with id `id`. Ids come from generated code, so an id out of
    /// range is a build error (const evaluation panics).
    pub const fn new(id: u8) -> Channel {
        assert!(id < MAX_CHANNELS, "channel id out of range");
        Channel(id)
    }

    /// The channel with id `id`, or `None` if `id` is out of range.
    pub const fn checked(id: u64) -> Option<Channel> {
        if id < MAX_CHANNELS as u64 {
            Some(Channel(id as u8))
        } else {
            None
        }
    }

    /// The id as written in system.xml.
    pub const fn index(self) -> u8 {
        self.0
    }
}

/// A child PD, by the `id` attribute it has under its parent in system.xml.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child(u8);

impl Child {
    /// The child with id `id`.
    pub const fn new(id: u8) -> Child {
        assert!(id < MAX_CHANNELS, "child id out of range");
        Child(id)
    }

    /// The child with id `id`, or `None` if out of range.
    pub const fn checked(id: u64) -> Option<Child> {
        if id < MAX_CHANNELS as u64 {
            Some(Child(id as u8))
        } else {
            None
        }
    }

    /// The id as written in system.xml.
    pub const fn index(self) -> u8 {
        self.0
    }
}

/// A set of channels, one bit per id, as a notification badge is on seL4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChannelSet(u64);

impl ChannelSet {
    /// The empty set.
    pub const EMPTY: ChannelSet = ChannelSet(0);

    /// A set from raw bits; bits 63 and up are dropped.
    pub const fn from_bits(bits: u64) -> ChannelSet {
        ChannelSet(bits & ((1u64 << MAX_CHANNELS) - 1))
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// A set holding just `ch`.
    pub const fn single(ch: Channel) -> ChannelSet {
        ChannelSet(1u64 << ch.0)
    }

    /// Adds `ch`.
    pub fn insert(&mut self, ch: Channel) {
        self.0 |= 1u64 << ch.0;
    }

    /// Removes `ch`, returning whether it was there.
    pub fn remove(&mut self, ch: Channel) -> bool {
        let had = self.contains(ch);
        self.0 &= !(1u64 << ch.0);
        had
    }

    /// Whether `ch` is in the set.
    pub const fn contains(self, ch: Channel) -> bool {
        self.0 & (1u64 << ch.0) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union of two sets.
    pub const fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    /// The channels in the set, lowest id first.
    pub fn iter(self) -> ChannelSetIter {
        ChannelSetIter(self.0)
    }
}

impl IntoIterator for ChannelSet {
    type Item = Channel;
    type IntoIter = ChannelSetIter;
    fn into_iter(self) -> ChannelSetIter {
        self.iter()
    }
}

impl FromIterator<Channel> for ChannelSet {
    fn from_iter<I: IntoIterator<Item = Channel>>(iter: I) -> Self {
        let mut set = ChannelSet::EMPTY;
        for ch in iter {
            set.insert(ch);
        }
        set
    }
}

/// Iterator over a [`ChannelSet`].
#[derive(Clone, Debug)]
pub struct ChannelSetIter(u64);

impl Iterator for ChannelSetIter {
    type Item = Channel;
    fn next(&mut self) -> Option<Channel> {
        if self.0 == 0 {
            return None;
        }
        let id = self.0.trailing_zeros() as u8;
        self.0 &= self.0 - 1;
        Some(Channel(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_iterates_in_order_and_drops_high_bits() {
        let set = ChannelSet::from_bits(u64::MAX);
        assert_eq!(set.iter().count(), 63);
        let set: ChannelSet = [Channel::new(5), Channel::new(0), Channel::new(62)]
            .into_iter()
            .collect();
        let ids: Vec<u8> = set.iter().map(Channel::index).collect();
        assert_eq!(ids, vec![0, 5, 62]);
        assert!(set.contains(Channel::new(5)));
        assert!(!set.contains(Channel::new(6)));
    }

    #[test]
    fn checked_rejects_out_of_range() {
        assert_eq!(Channel::checked(62).map(Channel::index), Some(62));
        assert!(Channel::checked(63).is_none());
        assert!(Child::checked(u64::MAX).is_none());
    }
}
