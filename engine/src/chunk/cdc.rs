//! Content-defined chunking: a FastCDC (2020) normalized gear-hash chunker, whole-buffer and streaming.

use bytes::{Bytes, BytesMut};

use crate::limits::{
    CHUNK_SIZE_AVG_DEFAULT, CHUNK_SIZE_AVG_MIN_LIMIT, CHUNK_SIZE_MAX_DEFAULT, CHUNK_SIZE_MAX_LIMIT,
    CHUNK_SIZE_MIN_DEFAULT, CHUNK_SIZE_MIN_LIMIT, CHUNK_STREAM_COALESCE_BELOW,
};

/// Minimum, average and maximum chunk size in bytes. Build it with [`ChunkSizes::new`]; the
/// fields are public for reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSizes {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
}

impl ChunkSizes {
    /// Validates the sizes: `CHUNK_SIZE_MIN_LIMIT <= min < avg < max <= CHUNK_SIZE_MAX_LIMIT`,
    /// `avg` a power of two of at least `CHUNK_SIZE_AVG_MIN_LIMIT`, `min` and `max` even.
    pub fn new(min: usize, avg: usize, max: usize) -> crate::Result<Self> {
        use crate::Error::Invalid;
        if min < CHUNK_SIZE_MIN_LIMIT {
            return Err(Invalid("chunk size: min below CHUNK_SIZE_MIN_LIMIT"));
        }
        if avg < CHUNK_SIZE_AVG_MIN_LIMIT || !avg.is_power_of_two() {
            return Err(Invalid(
                "chunk size: avg must be a power of two >= CHUNK_SIZE_AVG_MIN_LIMIT",
            ));
        }
        if min >= avg || avg >= max {
            return Err(Invalid("chunk size: need min < avg < max"));
        }
        if max > CHUNK_SIZE_MAX_LIMIT {
            return Err(Invalid("chunk size: max above CHUNK_SIZE_MAX_LIMIT"));
        }
        if (min | max) & 1 != 0 {
            return Err(Invalid("chunk size: min and max must be even"));
        }
        Ok(ChunkSizes { min, avg, max })
    }
}

impl Default for ChunkSizes {
    fn default() -> Self {
        ChunkSizes {
            min: CHUNK_SIZE_MIN_DEFAULT,
            avg: CHUNK_SIZE_AVG_DEFAULT,
            max: CHUNK_SIZE_MAX_DEFAULT,
        }
    }
}

/// Gear table of FastCDC 2020 (upper 64 bits of MD5(0..=255)), taken from the `fastcdc` crate
/// (MIT) so that cut points are identical to `fastcdc::v2020` at normalization level 1.
#[rustfmt::skip]
static GEAR: [u64; 256] = [
    0x3b5d3c7d207e37dc, 0x784d68ba91123086, 0xcd52880f882e7298, 0xeacf8e4e19fdcca7,
    0xc31f385dfbd1632b, 0x1d5f27001e25abe6, 0x83130bde3c9ad991, 0xc4b225676e9b7649,
    0xaa329b29e08eb499, 0xb67fcbd21e577d58, 0x0027baaada2acf6b, 0xe3ef2d5ac73c2226,
    0x0890f24d6ed312b7, 0xa809e036851d7c7e, 0xf0a6fe5e0013d81b, 0x1d026304452cec14,
    0x03864632648e248f, 0xcdaacf3dcd92b9b4, 0xf5e012e63c187856, 0x8862f9d3821c00b6,
    0xa82f7338750f6f8a, 0x1e583dc6c1cb0b6f, 0x7a3145b69743a7f1, 0xabb20fee404807eb,
    0xb14b3cfe07b83a5d, 0xb9dc27898adb9a0f, 0x3703f5e91baa62be, 0xcf0bb866815f7d98,
    0x3d9867c41ea9dcd3, 0x1be1fa65442bf22c, 0x14300da4c55631d9, 0xe698e9cbc6545c99,
    0x4763107ec64e92a5, 0xc65821fc65696a24, 0x76196c064822f0b7, 0x485be841f3525e01,
    0xf652bc9c85974ff5, 0xcad8352face9e3e9, 0x2a6ed1dceb35e98e, 0xc6f483badc11680f,
    0x3cfd8c17e9cf12f1, 0x89b83c5e2ea56471, 0xae665cfd24e392a9, 0xec33c4e504cb8915,
    0x3fb9b15fc9fe7451, 0xd7fd1fd1945f2195, 0x31ade0853443efd8, 0x255efc9863e1e2d2,
    0x10eab6008d5642cf, 0x46f04863257ac804, 0xa52dc42a789a27d3, 0xdaaadf9ce77af565,
    0x6b479cd53d87febb, 0x6309e2d3f93db72f, 0xc5738ffbaa1ff9d6, 0x6bd57f3f25af7968,
    0x67605486d90d0a4a, 0xe14d0b9663bfbdae, 0xb7bbd8d816eb0414, 0xdef8a4f16b35a116,
    0xe7932d85aaaffed6, 0x08161cbae90cfd48, 0x855507beb294f08b, 0x91234ea6ffd399b2,
    0xad70cf4b2435f302, 0xd289a97565bc2d27, 0x8e558437ffca99de, 0x96d2704b7115c040,
    0x0889bbcdfc660e41, 0x5e0d4e67dc92128d, 0x72a9f8917063ed97, 0x438b69d409e016e3,
    0xdf4fed8a5d8a4397, 0x00f41dcf41d403f7, 0x4814eb038e52603f, 0x9dafbacc58e2d651,
    0xfe2f458e4be170af, 0x4457ec414df6a940, 0x06e62f1451123314, 0xbd1014d173ba92cc,
    0xdef318e25ed57760, 0x9fea0de9dfca8525, 0x459de1e76c20624b, 0xaeec189617e2d666,
    0x126a2c06ab5a83cb, 0xb1321532360f6132, 0x65421503dbb40123, 0x2d67c287ea089ab3,
    0x6c93bff5a56bd6b6, 0x4ffb2036cab6d98d, 0xce7b785b1be7ad4f, 0xedb42ef6189fd163,
    0xdc905288703988f6, 0x365f9c1d2c691884, 0xc640583680d99bfe, 0x3cd4624c07593ec6,
    0x7f1ea8d85d7c5805, 0x014842d480b57149, 0x0b649bcb5a828688, 0xbcd5708ed79b18f0,
    0xe987c862fbd2f2f0, 0x982731671f0cd82c, 0xbaf13e8b16d8c063, 0x8ea3109cbd951bba,
    0xd141045bfb385cad, 0x2acbc1a0af1f7d30, 0xe6444d89df03bfdf, 0xa18cc771b8188ff9,
    0x9834429db01c39bb, 0x214add07fe086a1f, 0x8f07c19b1f6b3ff9, 0x56a297b1bf4ffe55,
    0x94d558e493c54fc7, 0x40bfc24c764552cb, 0x931a706f8a8520cb, 0x32229d322935bd52,
    0x2560d0f5dc4fefaf, 0x9dbcc48355969bb6, 0x0fd81c3985c0b56a, 0xe03817e1560f2bda,
    0xc1bb4f81d892b2d5, 0xb0c4864f4e28d2d7, 0x3ecc49f9d9d6c263, 0x51307e99b52ba65e,
    0x8af2b688da84a752, 0xf5d72523b91b20b6, 0x6d95ff1ff4634806, 0x562f21555458339a,
    0xc0ce47f889336346, 0x487823e5089b40d8, 0xe4727c7ebc6d9592, 0x5a8f7277e94970ba,
    0xfca2f406b1c8bb50, 0x5b1f8a95f1791070, 0xd304af9fc9028605, 0x5440ab7fc930e748,
    0x312d25fbca2ab5a1, 0x10f4a4b234a4d575, 0x90301d55047e7473, 0x3b6372886c61591e,
    0x293402b77c444e06, 0x451f34a4d3e97dd7, 0x3158d814d81bc57b, 0x034942425b9bda69,
    0xe2032ff9e532d9bb, 0x62ae066b8b2179e5, 0x9545e10c2f8d71d8, 0x7ff7483eb2d23fc0,
    0x00945fcebdc98d86, 0x8764bbbe99b26ca2, 0x1b1ec62284c0bfc3, 0x58e0fcc4f0aa362b,
    0x5f4abefa878d458d, 0xfd74ac2f9607c519, 0xa4e3fb37df8cbfa9, 0xbf697e43cac574e5,
    0x86f14a3f68f4cd53, 0x24a23d076f1ce522, 0xe725cd8048868cc8, 0xbf3c729eb2464362,
    0xd8f6cd57b3cc1ed8, 0x6329e52425541577, 0x62aa688ad5ae1ac0, 0x0a242566269bf845,
    0x168b1a4753aca74b, 0xf789afefff2e7e3c, 0x6c3362093b6fccdb, 0x4ce8f50bd28c09b2,
    0x006a2db95ae8aa93, 0x975b0d623c3d1a8c, 0x18605d3935338c5b, 0x5bb6f6136cad3c71,
    0x0f53a20701f8d8a6, 0xab8c5ad2e7e93c67, 0x40b5ac5127acaa29, 0x8c7bf63c2075895f,
    0x78bd9f7e014a805c, 0xb2c9e9f4f9c8c032, 0xefd6049827eb91f3, 0x2be459f482c16fbd,
    0xd92ce0c5745aaa8c, 0x0aaa8fb298d965b9, 0x2b37f92c6c803b15, 0x8c54a5e94e0f0e78,
    0x95f9b6e90c0a3032, 0xe7939faa436c7874, 0xd16bfe8f6a8a40c9, 0x44982b86263fd2fa,
    0xe285fb39f984e583, 0x779a8df72d7619d3, 0xf2d79a8de8d5dd1e, 0xd1037354d66684e2,
    0x004c82a4e668a8e5, 0x31d40a7668b044e6, 0xd70578538bd02c11, 0xdb45431078c5f482,
    0x977121bb7f6a51ad, 0x73d5ccbd34eff8dd, 0xe437a07d356e17cd, 0x47b2782043c95627,
    0x9fb251413e41d49a, 0xccd70b60652513d3, 0x1c95b31e8a1b49b2, 0xcae73dfd1bcb4c1b,
    0x34d98331b1f5b70f, 0x784e39f22338d92f, 0x18613d4a064df420, 0xf1d8dae25f0bcebe,
    0x33f77c15ae855efc, 0x3c88b3b912eb109c, 0x956a2ec96bafeea5, 0x1aa005b5e0ad0e87,
    0x5500d70527c4bb8e, 0xe36c57196421cc44, 0x13c4d286cc36ee39, 0x5654a23d818b2a81,
    0x77b1dc13d161abdc, 0x734f44de5f8d5eb5, 0x60717e174a6c89a2, 0xd47d9649266a211e,
    0x5b13a4322bb69e90, 0xf7669609f8b5fc3c, 0x21e6ac55bedcdac9, 0x9b56b62b61166dea,
    0xf48f66b939797e9c, 0x35f332f9c0e6ae9a, 0xcc733f6a9a878db0, 0x3da161e41cc108c2,
    0xb7d74ae535914d51, 0x4d493b0b11d36469, 0xce264d1dfba9741a, 0xa9d1f2dc7436dc06,
    0x70738016604c2a27, 0x231d36e96e93f3d5, 0x7666881197838d19, 0x4a2a83090aaad40c,
    0xf1e761591668b35d, 0x7363236497f730a7, 0x301080e37379dd4d, 0x502dea2971827042,
    0xc2c5eb858f32625f, 0x786afb9edfafbdff, 0xdaee0d868490b2a4, 0x617366b3268609f6,
    0xae0e35a0fe46173e, 0xd1a07de93e824f11, 0x079b8b115ea4cca8, 0x93a99274558faebb,
    0xfb1e6e22e08a03b3, 0xea635fdba3698dd0, 0xcf53659328503a5c, 0xcde3b31e6fd5d780,
    0x8e3e4221d3614413, 0xef14d0d86bf1a22c, 0xe1d830d3f16c5ddb, 0xaabd2b2a451504e1
];

/// FastCDC 2020 masks indexed by bit count (spread bits; from the `fastcdc` crate, MIT).
const MASKS: [u64; 24] = [
    0,
    0,
    0,
    0,
    0,
    0,
    0x0000_0000_0180_3110, // 64 B
    0x0000_0000_1803_5100, // 128 B
    0x0000_0018_0003_5300, // 256 B
    0x0000_0190_0035_3000, // 512 B
    0x0000_5900_0353_0000, // 1 KiB
    0x0000_d900_0353_0000, // 2 KiB
    0x0000_d901_0353_0000, // 4 KiB
    0x0000_d903_0353_0000, // 8 KiB
    0x0000_d903_1353_0000, // 16 KiB
    0x0000_d90f_0353_0000, // 32 KiB
    0x0000_d903_0353_7000, // 64 KiB
    0x0000_d907_0353_7000, // 128 KiB
    0x0000_d907_0753_7000, // 256 KiB
    0x0000_d917_0753_7000, // 512 KiB
    0x0000_d917_4753_7000, // 1 MiB
    0x0000_d917_6753_7000, // 2 MiB
    0x0000_d937_6753_7000, // 4 MiB
    0x0000_d937_7753_7000, // 8 MiB
];

/// Validated sizes plus the two normalization masks (level 1: one bit harder before `avg`,
/// one bit easier after it).
#[derive(Clone, Copy, Debug)]
struct Params {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl Params {
    fn new(sizes: &ChunkSizes) -> Params {
        // The fields are public: a hand-built invalid value falls back to the defaults.
        let ok = ChunkSizes::new(sizes.min, sizes.avg, sizes.max);
        debug_assert!(ok.is_ok(), "invalid ChunkSizes {sizes:?}");
        let s = ok.unwrap_or_default();
        let bits = s.avg.trailing_zeros() as usize;
        Params {
            min: s.min,
            avg: s.avg,
            max: s.max,
            mask_s: MASKS[bits + 1],
            mask_l: MASKS[bits - 1],
        }
    }
}

const fn gear_shifted(k: u32) -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = GEAR[i] << k;
        i += 1;
    }
    t
}

/// `GEAR` shifted left by 1, 2 and 3 bits: a block of four bytes is added to the hash at once.
static GEAR_1: [u64; 256] = gear_shifted(1);
static GEAR_2: [u64; 256] = gear_shifted(2);
static GEAR_3: [u64; 256] = gear_shifted(3);

// A mask shifted left by 3 must keep all its bits for the block test in `scan` to be exact.
const _: () = {
    let mut i = 0;
    while i < MASKS.len() {
        assert!(MASKS[i] >> 60 == 0);
        i += 1;
    }
};

/// Rolls the gear hash (`h = (h << 1) + GEAR[byte]`) over `bytes` and returns the index of the
/// first byte after which `h & mask == 0`. On `None`, `hash` holds the state after the last byte.
///
/// Four bytes at a time: with `H = h << 4` and prefix sums `p1..p4` of the shifted gear values,
/// the hash after byte k, shifted left by `4 - k`, is `H + pk`; testing it against
/// `mask << (4 - k)` is the same test. The loop-carried chain is one shift and one add per four
/// bytes instead of per byte (see docs/chunking.md).
#[inline(never)]
fn scan(hash: &mut u64, bytes: &[u8], mask: u64) -> Option<usize> {
    let mut h = *hash;
    let (m1, m2, m3) = (mask << 1, mask << 2, mask << 3);
    let mut blocks = bytes.chunks_exact(8);
    let mut base = 0usize;
    for b in blocks.by_ref() {
        macro_rules! quad {
            ($i:expr) => {
                let hh = h << 4;
                let p1 = GEAR_3[b[$i] as usize];
                let p2 = p1.wrapping_add(GEAR_2[b[$i + 1] as usize]);
                let p3 = p2.wrapping_add(GEAR_1[b[$i + 2] as usize]);
                let p4 = p3.wrapping_add(GEAR[b[$i + 3] as usize]);
                if hh.wrapping_add(p1) & m3 == 0 {
                    return Some(base + $i);
                }
                if hh.wrapping_add(p2) & m2 == 0 {
                    return Some(base + $i + 1);
                }
                if hh.wrapping_add(p3) & m1 == 0 {
                    return Some(base + $i + 2);
                }
                h = hh.wrapping_add(p4);
                if h & mask == 0 {
                    return Some(base + $i + 3);
                }
            };
        }
        quad!(0);
        quad!(4);
        base += 8;
    }
    for (i, &byte) in blocks.remainder().iter().enumerate() {
        h = (h << 1).wrapping_add(GEAR[byte as usize]);
        if h & mask == 0 {
            return Some(base + i);
        }
    }
    *hash = h;
    None
}

/// Length of the chunk that starts at `data[0]`, given that `data` runs to the end of the input.
#[inline]
fn next_cut(p: &Params, data: &[u8]) -> usize {
    let n = data.len();
    if n <= p.min {
        return n;
    }
    let remaining = n.min(p.max);
    // As FastCDC 2020 scans in byte pairs, a lone last byte of an odd-sized tail is never tested.
    let end = remaining & !1;
    let center = p.avg.min(end);
    let mut h = 0u64;
    if let Some(i) = data
        .get(p.min..center)
        .and_then(|s| scan(&mut h, s, p.mask_s))
    {
        return p.min + i;
    }
    if let Some(i) = data
        .get(center..end)
        .and_then(|s| scan(&mut h, s, p.mask_l))
    {
        return center + i;
    }
    remaining
}

/// End offsets of the chunks of `data` (the last one is `data.len()`; empty input has none).
pub fn cut_points(sizes: &ChunkSizes, data: &[u8]) -> Vec<usize> {
    let p = Params::new(sizes);
    let mut out = Vec::with_capacity(data.len() / p.avg + 1);
    let mut start = 0;
    while let Some(rest) = data.get(start..).filter(|r| !r.is_empty()) {
        start += next_cut(&p, rest);
        out.push(start);
    }
    out
}

/// Streaming chunker: feed buffers of any size with [`push`](Self::push), get the chunks they
/// complete; [`finish`](Self::finish) gives the tail. Boundaries are those of [`cut_points`] over
/// the concatenated input, every byte is scanned once, and a chunk inside one input buffer is a
/// zero-copy slice of it.
#[derive(Debug)]
pub struct StreamChunker {
    p: Params,
    /// Pieces of the current, unfinished chunk (slices of earlier inputs), then `open`.
    carry: Vec<Bytes>,
    /// Small input pieces of the current chunk, copied together (after `carry`).
    open: BytesMut,
    /// Total length of `carry` and `open`, bytes.
    carry_len: usize,
    /// Gear hash state after the bytes before `scan_pos` of the current chunk.
    hash: u64,
    /// Chunk-relative position of the next byte to test (bytes below `min` are never tested).
    scan_pos: usize,
}

impl StreamChunker {
    pub fn new(sizes: ChunkSizes) -> StreamChunker {
        let p = Params::new(&sizes);
        StreamChunker {
            p,
            carry: Vec::new(),
            open: BytesMut::new(),
            carry_len: 0,
            hash: 0,
            scan_pos: p.min,
        }
    }

    /// Feeds `data`; appends to `out` every chunk that it completes.
    pub fn push(&mut self, data: Bytes, out: &mut Vec<Bytes>) {
        self.push_each(data, |chunk| out.push(chunk));
    }

    /// Feeds `data`; calls `f` with every chunk that it completes, as soon as it is cut.
    pub fn push_each(&mut self, data: Bytes, mut f: impl FnMut(Bytes)) {
        // `data[off..]` is the unconsumed input; it continues the current chunk at `carry_len`.
        let mut off = 0usize;
        while off < data.len() {
            let rest = &data[off..];
            let avail = self.carry_len + rest.len();
            // Test positions below `limit`; an even last byte waits until the next byte is known.
            let limit = avail.min(self.p.max) & !1;
            let cut = self.find(rest, limit);
            match cut {
                Some(c) => f(self.emit(&data, &mut off, c)),
                None if avail >= self.p.max => f(self.emit(&data, &mut off, self.p.max)),
                None => {
                    self.scan_pos = self.scan_pos.max(limit);
                    if rest.len() < CHUNK_STREAM_COALESCE_BELOW {
                        self.open.extend_from_slice(rest);
                    } else {
                        self.seal_open();
                        self.carry.push(data.slice(off..));
                    }
                    self.carry_len = avail;
                    off = data.len();
                }
            }
        }
    }

    /// Tests positions `scan_pos..limit` of the current chunk (carry, then `rest`); returns the
    /// chunk-relative cut position if one is found.
    #[inline]
    fn find(&mut self, rest: &[u8], limit: usize) -> Option<usize> {
        let p = self.p;
        if self.scan_pos >= limit {
            return None;
        }
        // At most the one deferred byte of the carry is untested.
        if self.scan_pos < self.carry_len {
            debug_assert_eq!(self.scan_pos + 1, self.carry_len);
            let byte = match self.open.last() {
                Some(&b) => b,
                None => self.carry.last().and_then(|b| b.last().copied())?,
            };
            let mask = if self.scan_pos < p.avg {
                p.mask_s
            } else {
                p.mask_l
            };
            let pos = self.scan_pos;
            self.scan_pos += 1;
            if scan(&mut self.hash, &[byte], mask).is_some() {
                return Some(pos);
            }
        }
        let base = self.carry_len;
        let from = self.scan_pos;
        let center = p.avg.clamp(from, limit);
        let s = rest.get(from - base..center - base).unwrap_or_default();
        if let Some(i) = scan(&mut self.hash, s, p.mask_s) {
            return Some(from + i);
        }
        let l = rest.get(center - base..limit - base).unwrap_or_default();
        if let Some(i) = scan(&mut self.hash, l, p.mask_l) {
            return Some(center + i);
        }
        self.scan_pos = limit;
        None
    }

    /// Moves the coalesced small pieces to the end of `carry`.
    fn seal_open(&mut self) {
        if !self.open.is_empty() {
            self.carry.push(self.open.split().freeze());
        }
    }

    /// Emits positions `..c` of the current chunk and starts the next chunk at `c`.
    fn emit(&mut self, data: &Bytes, off: &mut usize, c: usize) -> Bytes {
        self.seal_open();
        self.hash = 0;
        self.scan_pos = self.p.min;
        if c >= self.carry_len {
            let end = *off + (c - self.carry_len);
            let tail = data.slice(*off..end);
            *off = end;
            self.carry_len = 0;
            if self.carry.is_empty() {
                tail
            } else {
                let mut buf = BytesMut::with_capacity(c);
                for piece in self.carry.drain(..) {
                    buf.extend_from_slice(&piece);
                }
                buf.extend_from_slice(&tail);
                buf.freeze()
            }
        } else {
            // Cut inside the carry (only at its deferred last byte): that byte starts the next chunk.
            let mut buf = BytesMut::with_capacity(c);
            let mut left = c;
            let mut next = Vec::new();
            for piece in self.carry.drain(..) {
                let take = left.min(piece.len());
                buf.extend_from_slice(&piece[..take]);
                if take < piece.len() {
                    next.push(piece.slice(take..));
                }
                left -= take;
            }
            self.carry = next;
            self.carry_len -= c;
            buf.freeze()
        }
    }

    /// Ends the stream: the last chunk (the untested tail), or `None` if nothing is left.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.seal_open();
        self.hash = 0;
        self.scan_pos = self.p.min;
        self.carry_len = 0;
        match self.carry.len() {
            0 => None,
            1 => self.carry.pop(),
            _ => {
                let mut buf = BytesMut::new();
                for piece in self.carry.drain(..) {
                    buf.extend_from_slice(&piece);
                }
                Some(buf.freeze())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// Noise, runs of zeros, and repeated text: the chunker must cope with each.
    fn sample(n: usize, seed: u64, kind: u8) -> Vec<u8> {
        match kind % 3 {
            0 => noise(n, seed),
            1 => {
                let mut v = noise(n, seed);
                let (a, b) = (n / 4, n / 2);
                v[a..b].fill(0);
                v
            }
            _ => b"Elevens navn: ____ Klasse: 7.b\n"
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect(),
        }
    }

    fn fastcdc_cuts(s: &ChunkSizes, data: &[u8]) -> Vec<usize> {
        fastcdc::v2020::FastCDC::new(data, s.min as u32, s.avg as u32, s.max as u32)
            .map(|c| c.offset + c.length)
            .collect()
    }

    fn stream(s: ChunkSizes, data: &[u8], splits: &[usize]) -> Vec<Bytes> {
        let mut ch = StreamChunker::new(s);
        let mut out = Vec::new();
        let mut start = 0;
        for &len in splits.iter().cycle() {
            if start >= data.len() {
                break;
            }
            let end = (start + len).min(data.len());
            ch.push(Bytes::copy_from_slice(&data[start..end]), &mut out);
            start = end;
        }
        out.extend(ch.finish());
        out
    }

    fn ends(chunks: &[Bytes]) -> Vec<usize> {
        chunks
            .iter()
            .scan(0, |acc, c| {
                *acc += c.len();
                Some(*acc)
            })
            .collect()
    }

    fn small() -> ChunkSizes {
        ChunkSizes::new(64, 256, 1024).unwrap()
    }

    #[test]
    fn validates_sizes() {
        assert!(ChunkSizes::new(16384, 65536, 262144).is_ok());
        assert!(ChunkSizes::new(32, 256, 1024).is_err(), "min too small");
        assert!(
            ChunkSizes::new(64, 300, 1024).is_err(),
            "avg not a power of two"
        );
        assert!(ChunkSizes::new(64, 128, 1024).is_err(), "avg too small");
        assert!(ChunkSizes::new(512, 256, 1024).is_err(), "min > avg");
        assert!(ChunkSizes::new(64, 1024, 1024).is_err(), "avg == max");
        assert!(ChunkSizes::new(65, 256, 1024).is_err(), "odd min");
        assert!(ChunkSizes::new(64, 256, 1023).is_err(), "odd max");
        assert!(ChunkSizes::new(64, 1 << 20, CHUNK_SIZE_MAX_LIMIT + 2).is_err());
        let d = ChunkSizes::default();
        assert_eq!(ChunkSizes::new(d.min, d.avg, d.max).ok(), Some(d));
    }

    #[test]
    fn same_cuts_as_fastcdc_v2020() {
        for (i, s) in [
            small(),
            ChunkSizes::new(1024, 4096, 16384).unwrap(),
            ChunkSizes::new(4096, 16384, 65536).unwrap(),
            ChunkSizes::default(),
        ]
        .into_iter()
        .enumerate()
        {
            for kind in 0..3 {
                for n in [0, 1, 63, 64, 65, 1000, 1001, 100_001, 1 << 20] {
                    let data = sample(n, i as u64 * 10 + kind as u64, kind);
                    assert_eq!(
                        cut_points(&s, &data),
                        fastcdc_cuts(&s, &data),
                        "{s:?} {n} {kind}"
                    );
                }
            }
        }
    }

    #[test]
    fn small_file_is_one_chunk_and_zeros_cut_at_max() {
        let s = small();
        assert_eq!(cut_points(&s, &noise(64, 1)), vec![64]);
        assert_eq!(cut_points(&s, &[]), Vec::<usize>::new());
        assert_eq!(cut_points(&s, &vec![0; 3000]), vec![1024, 2048, 3000]);
    }

    #[test]
    fn chunk_within_one_buffer_is_zero_copy() {
        let s = small();
        let data = Bytes::from(noise(50_000, 3));
        let mut ch = StreamChunker::new(s);
        let mut out = Vec::new();
        ch.push(data.clone(), &mut out);
        assert!(out.len() > 10);
        let range = data.as_ptr_range();
        for c in &out {
            assert!(range.contains(&c.as_ptr()), "chunk was copied");
        }
        // The tail is a slice too unless it is small enough to be coalesced.
        let tail = ch.finish().unwrap();
        assert_eq!(
            range.contains(&tail.as_ptr()),
            tail.len() >= CHUNK_STREAM_COALESCE_BELOW
        );
        assert!(ch.finish().is_none());
    }

    #[test]
    fn tiny_pushes_are_coalesced() {
        let s = ChunkSizes::new(1024, 4096, 16384).unwrap();
        let data = vec![0u8; 10_000];
        let mut ch = StreamChunker::new(s);
        let mut out = Vec::new();
        for b in &data {
            ch.push(Bytes::copy_from_slice(std::slice::from_ref(b)), &mut out);
            assert!(ch.carry.len() <= 2, "one Bytes per pushed byte");
        }
        assert!(out.is_empty());
        assert_eq!(ch.finish().map(|b| b.len()), Some(10_000));
    }

    #[test]
    fn stream_reusable_after_finish() {
        let s = small();
        let data = noise(10_000, 4);
        let mut ch = StreamChunker::new(s);
        for _ in 0..2 {
            let mut out = Vec::new();
            ch.push(Bytes::copy_from_slice(&data[..3333]), &mut out);
            ch.push(Bytes::copy_from_slice(&data[3333..]), &mut out);
            out.extend(ch.finish());
            assert_eq!(ends(&out), cut_points(&s, &data));
        }
    }

    #[test]
    fn match_on_last_even_byte_is_not_a_cut() {
        // FastCDC 2020 never tests the lone last byte of an odd tail; the stream must agree
        // although it cannot know the byte is last until `finish`.
        let s = small();
        let x = noise(20_000, 5);
        let mut prev = 0;
        let mut hits = 0;
        for c in cut_points(&s, &x) {
            if c - prev > s.min && c - prev < s.max && (c - prev) % 2 == 0 && c < x.len() {
                let data = &x[..=c];
                let whole = cut_points(&s, data);
                assert_eq!(whole.last(), Some(&(c + 1)));
                assert!(!whole.contains(&c));
                assert_eq!(ends(&stream(s, data, &[1])), whole);
                assert_eq!(ends(&stream(s, data, &[c + 1])), whole);
                assert_eq!(ends(&stream(s, data, &[c, 1])), whole);
                hits += 1;
            }
            prev = c;
        }
        assert!(hits > 5, "the sample has too few even cuts: {hits}");
    }

    #[test]
    fn insertion_changes_only_nearby_chunks() {
        let s = ChunkSizes::new(1024, 4096, 16384).unwrap();
        let a = noise(400_000, 6);
        let mut b = a.clone();
        b.splice(200_000..200_000, noise(100, 7));
        let chunks = |d: &[u8]| -> Vec<Vec<u8>> {
            let mut start = 0;
            cut_points(&s, d)
                .into_iter()
                .map(|e| {
                    let c = d[start..e].to_vec();
                    start = e;
                    c
                })
                .collect()
        };
        let (ca, cb) = (chunks(&a), chunks(&b));
        let new = cb.iter().filter(|c| !ca.contains(c)).count();
        assert!(ca.len() > 50);
        assert!(
            (1..=3).contains(&new),
            "{new} new chunks after one insertion"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn stream_equals_whole_buffer(
            n in 0usize..12_000,
            seed in any::<u64>(),
            kind in 0u8..3,
            splits in proptest::collection::vec(1usize..3000, 1..12),
        ) {
            let s = small();
            let data = sample(n, seed, kind);
            let cuts = cut_points(&s, &data);
            let chunks = stream(s, &data, &splits);
            prop_assert_eq!(ends(&chunks), cuts.clone());
            prop_assert_eq!(chunks.concat(), data.clone());
            for (i, c) in chunks.iter().enumerate() {
                prop_assert!(c.len() <= s.max);
                prop_assert!(!c.is_empty());
                if i + 1 < chunks.len() {
                    prop_assert!(c.len() >= s.min);
                }
            }
            // Tiny pushes (byte by byte and pairs) exercise the deferred-byte path.
            prop_assert_eq!(ends(&stream(s, &data, &[1])), cuts.clone());
            prop_assert_eq!(ends(&stream(s, &data, &[1, 2, 3])), cuts);
        }
    }
}
