//! SHA-256 for two streams at once.
//!
//! A push hashes every plaintext byte (for the manifest) and every
//! ciphertext byte (for the signed descriptor); a pull hashes both again to
//! verify them. With the x86 SHA extensions one stream runs at about
//! 1.5 GB/s on the machines we measured, limited by the latency of
//! `sha256rnds2`, not by its throughput: compressing a block of each
//! stream in one instruction sequence keeps the unit busy and hashes the
//! pair about 1.6 times as fast (`transfer`'s component figures: 2.4–2.6
//! GB/s for the pair against 1.55 GB/s for one stream).
//!
//! [`Sha256Lane`] is an ordinary SHA-256 hasher (FIPS 180-4) that can be fed
//! alone ([`Sha256Lane::update`]) or together with another
//! ([`update_pair`]). Without the SHA extensions (or off x86-64) both fall
//! back to the `sha2` crate's compression function. The tests check every
//! path against `sha2::Sha256`.

use sha2::digest::generic_array::GenericArray;

const BLOCK: usize = 64;

const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A SHA-256 hasher that [`update_pair`] can run beside another.
#[derive(Clone)]
pub struct Sha256Lane {
    state: [u32; 8],
    buf: [u8; BLOCK],
    buf_len: usize,
    len: u64,
}

impl Default for Sha256Lane {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Sha256Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256Lane")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Sha256Lane {
    /// A hasher of nothing yet.
    pub fn new() -> Self {
        Self {
            state: H0,
            buf: [0; BLOCK],
            buf_len: 0,
            len: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        let data = self.fill(data);
        let (blocks, tail) = data.split_at(data.len() / BLOCK * BLOCK);
        compress(&mut self.state, blocks);
        self.len += blocks.len() as u64;
        self.keep(tail);
    }

    /// The digest of everything hashed.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK];
        let n = self.buf_len;
        tail[..n].copy_from_slice(&self.buf[..n]);
        tail[n] = 0x80;
        let end = if n < BLOCK - 8 { BLOCK } else { 2 * BLOCK };
        tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, &tail[..end]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Tops up a partly filled block from `data` (compressing it once
    /// full); returns what is left of `data`. Afterwards either the block
    /// buffer is empty or all of `data` went into it.
    fn fill<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.buf_len == 0 {
            return data;
        }
        let take = (BLOCK - self.buf_len).min(data.len());
        self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
        self.buf_len += take;
        self.len += take as u64;
        if self.buf_len == BLOCK {
            let block = self.buf;
            compress(&mut self.state, &block);
            self.buf_len = 0;
        }
        &data[take..]
    }

    /// Keeps less than a block for later (the buffer is empty, or `tail`
    /// is).
    fn keep(&mut self, tail: &[u8]) {
        debug_assert!(tail.len() < BLOCK && (self.buf_len == 0 || tail.is_empty()));
        self.buf[self.buf_len..self.buf_len + tail.len()].copy_from_slice(tail);
        self.buf_len += tail.len();
        self.len += tail.len() as u64;
    }
}

/// Hashes `a` into `la` and `b` into `lb`, as `la.update(a); lb.update(b)`
/// would, compressing a block of each together while both have one.
pub fn update_pair(la: &mut Sha256Lane, a: &[u8], lb: &mut Sha256Lane, b: &[u8]) {
    let a = la.fill(a);
    let b = lb.fill(b);
    let (a_blocks, a_tail) = a.split_at(a.len() / BLOCK * BLOCK);
    let (b_blocks, b_tail) = b.split_at(b.len() / BLOCK * BLOCK);
    let n = a_blocks.len().min(b_blocks.len());
    compress_pair(&mut la.state, &a_blocks[..n], &mut lb.state, &b_blocks[..n]);
    compress(&mut la.state, &a_blocks[n..]);
    compress(&mut lb.state, &b_blocks[n..]);
    la.len += a_blocks.len() as u64;
    lb.len += b_blocks.len() as u64;
    la.keep(a_tail);
    lb.keep(b_tail);
}

/// Compresses whole blocks (`blocks.len()` is a multiple of 64).
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if shani::available() {
        shani::compress(state, blocks);
        return;
    }
    portable(state, blocks);
}

/// Compresses `a` into `sa` and `b` into `sb`, blocks of equal number.
fn compress_pair(sa: &mut [u32; 8], a: &[u8], sb: &mut [u32; 8], b: &[u8]) {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if shani::available() {
        shani::compress_pair(sa, a, sb, b);
        return;
    }
    portable(sa, a);
    portable(sb, b);
}

/// The `sha2` crate's compression function (its own SHA-NI, AVX or
/// portable code).
fn portable(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(BLOCK) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

#[cfg(target_arch = "x86_64")]
mod shani {
    //! The SHA-NI rounds, after the `sha2` crate's x86 backend (itself
    //! after Intel's reference code), for one or two blocks at a time.
    //! Everything here is safe Rust (the intrinsics are safe inside
    //! functions that enable their target features, Rust 1.87) except the
    //! two `unsafe` blocks in `compress` and `compress_pair`, which call
    //! such a function only after the CPU was seen to have those features.

    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32, _mm_set_epi32,
        _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi8, _mm_shuffle_epi32,
    };

    use super::BLOCK;

    const K: [u32; 64] = [
        0x428a_2f98,
        0x7137_4491,
        0xb5c0_fbcf,
        0xe9b5_dba5,
        0x3956_c25b,
        0x59f1_11f1,
        0x923f_82a4,
        0xab1c_5ed5,
        0xd807_aa98,
        0x1283_5b01,
        0x2431_85be,
        0x550c_7dc3,
        0x72be_5d74,
        0x80de_b1fe,
        0x9bdc_06a7,
        0xc19b_f174,
        0xe49b_69c1,
        0xefbe_4786,
        0x0fc1_9dc6,
        0x240c_a1cc,
        0x2de9_2c6f,
        0x4a74_84aa,
        0x5cb0_a9dc,
        0x76f9_88da,
        0x983e_5152,
        0xa831_c66d,
        0xb003_27c8,
        0xbf59_7fc7,
        0xc6e0_0bf3,
        0xd5a7_9147,
        0x06ca_6351,
        0x1429_2967,
        0x27b7_0a85,
        0x2e1b_2138,
        0x4d2c_6dfc,
        0x5338_0d13,
        0x650a_7354,
        0x766a_0abb,
        0x81c2_c92e,
        0x9272_2c85,
        0xa2bf_e8a1,
        0xa81a_664b,
        0xc24b_8b70,
        0xc76c_51a3,
        0xd192_e819,
        0xd699_0624,
        0xf40e_3585,
        0x106a_a070,
        0x19a4_c116,
        0x1e37_6c08,
        0x2748_774c,
        0x34b0_bcb5,
        0x391c_0cb3,
        0x4ed8_aa4a,
        0x5b9c_ca4f,
        0x682e_6ff3,
        0x748f_82ee,
        0x78a5_636f,
        0x84c8_7814,
        0x8cc7_0208,
        0x90be_fffa,
        0xa450_6ceb,
        0xbef9_a3f7,
        0xc671_78f2,
    ];

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }

    pub(super) fn compress(state: &mut [u32; 8], blocks: &[u8]) {
        assert!(available());
        // SAFETY: the CPU has every feature `blocks1` enables (checked
        // above); it touches memory only through safe references.
        #[allow(unsafe_code)]
        unsafe {
            blocks1(state, blocks);
        }
    }

    pub(super) fn compress_pair(sa: &mut [u32; 8], a: &[u8], sb: &mut [u32; 8], b: &[u8]) {
        assert!(available());
        // SAFETY: as in `compress`.
        #[allow(unsafe_code)]
        unsafe {
            blocks2(sa, a, sb, b);
        }
    }

    /// Words `4i..4i+4` of a block, big-endian, in SHA-NI's lane order.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn word4(block: &[u8; BLOCK], i: usize) -> __m128i {
        let v = u128::from_le_bytes(block[16 * i..16 * i + 16].try_into().expect("16 bytes"));
        // One unaligned load, then each 32-bit word byte-swapped.
        _mm_shuffle_epi8(
            _mm_set_epi64x((v >> 64) as i64, v as i64),
            _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203),
        )
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn k4(i: usize) -> __m128i {
        let k = |j: usize| K[4 * i + j] as i32;
        _mm_set_epi32(k(3), k(2), k(1), k(0))
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
        let t1 = _mm_sha256msg1_epu32(v0, v1);
        let t2 = _mm_alignr_epi8::<4>(v3, v2);
        _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), v3)
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, w: __m128i, i: usize) {
        let t1 = _mm_add_epi32(w, k4(i));
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, t1);
        let t2 = _mm_shuffle_epi32::<0x0E>(t1);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, t2);
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        let s = |j: usize| state[j] as i32;
        let dcba = _mm_set_epi32(s(3), s(2), s(1), s(0));
        let hgfe = _mm_set_epi32(s(7), s(6), s(5), s(4));
        let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
        let efgh = _mm_shuffle_epi32::<0x1B>(hgfe);
        (
            _mm_alignr_epi8::<8>(cdab, efgh),
            _mm_blend_epi16::<0xF0>(efgh, cdab),
        )
    }

    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32::<0x1B>(abef);
        let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
        let dcba = _mm_blend_epi16::<0xF0>(feba, dchg);
        let hgef = _mm_alignr_epi8::<8>(dchg, feba);
        *state = [
            _mm_extract_epi32::<0>(dcba) as u32,
            _mm_extract_epi32::<1>(dcba) as u32,
            _mm_extract_epi32::<2>(dcba) as u32,
            _mm_extract_epi32::<3>(dcba) as u32,
            _mm_extract_epi32::<0>(hgef) as u32,
            _mm_extract_epi32::<1>(hgef) as u32,
            _mm_extract_epi32::<2>(hgef) as u32,
            _mm_extract_epi32::<3>(hgef) as u32,
        ];
    }

    /// The 64 rounds of one block for each `(abef, cdgh, words)` given,
    /// written out so the message words stay in registers and, with two
    /// blocks, the two dependency chains interleave.
    macro_rules! rounds {
        ($($abef:ident $cdgh:ident $w:ident),+) => {
            $( rounds4(&mut $abef, &mut $cdgh, $w[0], 0); )+
            $( rounds4(&mut $abef, &mut $cdgh, $w[1], 1); )+
            $( rounds4(&mut $abef, &mut $cdgh, $w[2], 2); )+
            $( rounds4(&mut $abef, &mut $cdgh, $w[3], 3); )+
            rounds!(@s [$($abef $cdgh $w),+] 4, 0 1 2 3 4);
            rounds!(@s [$($abef $cdgh $w),+] 5, 1 2 3 4 0);
            rounds!(@s [$($abef $cdgh $w),+] 6, 2 3 4 0 1);
            rounds!(@s [$($abef $cdgh $w),+] 7, 3 4 0 1 2);
            rounds!(@s [$($abef $cdgh $w),+] 8, 4 0 1 2 3);
            rounds!(@s [$($abef $cdgh $w),+] 9, 0 1 2 3 4);
            rounds!(@s [$($abef $cdgh $w),+] 10, 1 2 3 4 0);
            rounds!(@s [$($abef $cdgh $w),+] 11, 2 3 4 0 1);
            rounds!(@s [$($abef $cdgh $w),+] 12, 3 4 0 1 2);
            rounds!(@s [$($abef $cdgh $w),+] 13, 4 0 1 2 3);
            rounds!(@s [$($abef $cdgh $w),+] 14, 0 1 2 3 4);
            rounds!(@s [$($abef $cdgh $w),+] 15, 1 2 3 4 0);
        };
        (@s [$($abef:ident $cdgh:ident $w:ident),+] $i:literal, $a:literal $b:literal $c:literal $d:literal $e:literal) => {
            $( $w[$e] = schedule($w[$a], $w[$b], $w[$c], $w[$d]); )+
            $( rounds4(&mut $abef, &mut $cdgh, $w[$e], $i); )+
        };
    }

    /// The message words of a block: 4 vectors and a slot for the
    /// schedule.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn words(block: &[u8]) -> [__m128i; 5] {
        let block: &[u8; BLOCK] = block.try_into().expect("whole blocks");
        let w0 = word4(block, 0);
        [w0, word4(block, 1), word4(block, 2), word4(block, 3), w0]
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn blocks1(state: &mut [u32; 8], blocks: &[u8]) {
        let (mut abef, mut cdgh) = load(state);
        for x in blocks.chunks_exact(BLOCK) {
            let (a0, c0) = (abef, cdgh);
            let mut w = words(x);
            rounds!(abef cdgh w);
            abef = _mm_add_epi32(abef, a0);
            cdgh = _mm_add_epi32(cdgh, c0);
        }
        store(state, abef, cdgh);
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn blocks2(sa: &mut [u32; 8], a: &[u8], sb: &mut [u32; 8], b: &[u8]) {
        let (mut a_abef, mut a_cdgh) = load(sa);
        let (mut b_abef, mut b_cdgh) = load(sb);
        for (x, y) in a.chunks_exact(BLOCK).zip(b.chunks_exact(BLOCK)) {
            let (a0, a1, b0, b1) = (a_abef, a_cdgh, b_abef, b_cdgh);
            let mut wa = words(x);
            let mut wb = words(y);
            rounds!(a_abef a_cdgh wa, b_abef b_cdgh wb);
            a_abef = _mm_add_epi32(a_abef, a0);
            a_cdgh = _mm_add_epi32(a_cdgh, a1);
            b_abef = _mm_add_epi32(b_abef, b0);
            b_cdgh = _mm_add_epi32(b_cdgh, b1);
        }
        store(sa, a_abef, a_cdgh);
        store(sb, b_abef, b_cdgh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha256};

    fn reference(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn one(data: &[u8]) -> [u8; 32] {
        let mut l = Sha256Lane::new();
        l.update(data);
        l.finalize()
    }

    #[test]
    fn known_answers() {
        // FIPS 180-4 examples.
        assert_eq!(
            one(b""),
            *b"\xe3\xb0\xc4\x42\x98\xfc\x1c\x14\x9a\xfb\xf4\xc8\x99\x6f\xb9\x24\x27\xae\x41\xe4\x64\x9b\x93\x4c\xa4\x95\x99\x1b\x78\x52\xb8\x55"
        );
        assert_eq!(
            one(b"abc"),
            *b"\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41\x40\xde\x5d\xae\x22\x23\xb0\x03\x61\xa3\x96\x17\x7a\x9c\xb4\x10\xff\x61\xf2\x00\x15\xad"
        );
        let mut a = Sha256Lane::new();
        let mut b = Sha256Lane::new();
        let million = vec![b'a'; 1_000_000];
        for (x, y) in million.chunks(4097).zip(million.chunks(999)) {
            update_pair(&mut a, x, &mut b, y);
        }
        // `b` got only part of it; finish it alone.
        b.update(&million[b.len() as usize..]);
        let want = *b"\xcd\xc7\x6e\x5c\x99\x14\xfb\x92\x81\xa1\xc7\xe2\x84\xd7\x3e\x67\xf1\x80\x9a\x48\xa4\x97\x20\x0e\x04\x6d\x39\xcc\xc7\x11\x2c\xd0";
        assert_eq!(a.len(), 1_000_000);
        assert_eq!(a.finalize(), want);
        assert_eq!(b.finalize(), want);
    }

    #[test]
    fn every_length_around_the_padding_edges() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(one(&data[..n]), reference(&data[..n]), "length {n}");
        }
    }

    #[test]
    fn the_paired_and_portable_paths_agree_with_sha2() {
        // Large enough that most blocks go through the paired rounds.
        let a: Vec<u8> = (0..1_048_613u32).map(|i| (i ^ (i >> 7)) as u8).collect();
        let b: Vec<u8> = (0..1_048_576u32).map(|i| (i * 13 + 5) as u8).collect();
        let (mut la, mut lb) = (Sha256Lane::new(), Sha256Lane::new());
        update_pair(&mut la, &a, &mut lb, &b);
        assert_eq!(la.finalize(), reference(&a));
        assert_eq!(lb.finalize(), reference(&b));
        let (mut sa, mut sb) = (H0, H0);
        let n = b.len() / BLOCK * BLOCK;
        portable(&mut sa, &a[..n]);
        portable(&mut sb, &b[..n]);
        let (mut ta, mut tb) = (H0, H0);
        compress_pair(&mut ta, &a[..n], &mut tb, &b[..n]);
        assert_eq!((ta, tb), (sa, sb));
        let mut t = H0;
        compress(&mut t, &a[..n]);
        assert_eq!(t, sa);
    }

    proptest! {
        #[test]
        fn any_split_into_any_calls_hashes_like_sha2(
            a in proptest::collection::vec(any::<u8>(), 0..3000),
            b in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec((0usize..700, 0usize..700, any::<bool>()), 0..12),
        ) {
            let (mut la, mut lb) = (Sha256Lane::new(), Sha256Lane::new());
            let (mut ra, mut rb) = (&a[..], &b[..]);
            for (x, y, paired) in cuts {
                let (x, y) = (x.min(ra.len()), y.min(rb.len()));
                if paired {
                    update_pair(&mut la, &ra[..x], &mut lb, &rb[..y]);
                } else {
                    la.update(&ra[..x]);
                    lb.update(&rb[..y]);
                }
                ra = &ra[x..];
                rb = &rb[y..];
            }
            update_pair(&mut la, ra, &mut lb, rb);
            prop_assert_eq!(la.len(), a.len() as u64);
            prop_assert_eq!(lb.len(), b.len() as u64);
            prop_assert_eq!(la.finalize(), reference(&a));
            prop_assert_eq!(lb.finalize(), reference(&b));
        }
    }
}
