# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The book stage's compiled hot path (issue 27 item 2): ``md.book`` bytes of a DELTA on
a synced book -> the instrument's levels -> the ``book.top`` record's bytes and the
book-state writes, with no pydantic record in between.

Each side is a C array of fixed-point keys (the price scaled by 10**18 in a 128-bit
integer; asks negated, so the best level of either side is the last) beside a list of
:class:`_Level` objects in the same order. A level keeps the :class:`Num` of its price as
the book first saw it (the spelling ``OrderBook``'s dict key keeps) and of its latest
quantity, each with its ``Decimal``, its canonical text (``str(Decimal)``, what msgspec
writes) and its JSON fragment, so the bytes written are the Python path's, and mid,
spread, microprice and imbalance are computed with the same ``Decimal`` operations in the
same order.

From ``BookUpdate`` records (a backtest's), :meth:`FastBooks.handle_update` takes the
record's fields instead of the bytes; where the C ``decimal`` module's layouts are as
checked when this module loads, a record's numbers are read from its Decimals' libmpdec
values and the imbalance is computed in integers under the context libmpdec's division
would use (both to the bit what the ``Decimal`` operations give; tested against them).

Only the plain case runs here: a DELTA of an instrument this object owns, whose payload
is in the exact form ``Record.encode`` writes (anything else: :meth:`FastBooks.handle`
returns ``None`` before touching the book), chained, whose crossed state does not change.
Everything else is handed back: the book, its chain position and flags and the level
store's mirror are written back into the :class:`BookProcessor` (``settle``) and the
Python path carries on; the next plain delta on a synced book takes them over again
(``_adopt``). The processor calls ``settle`` before it reads an owned instrument, so the
two are one state.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.object cimport (
    PyObject,
    PyObject_GenericGetDict,
    PyObject_GenericSetAttr,
    PyObject_GenericSetDict,
)
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeASCII
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove

from decimal import Decimal, InvalidOperation, getcontext

import msgspec
import orjson

cdef extern from *:
    """
    typedef __int128 fb_i128;
    """
    ctypedef long long fb_i128

cdef extern from *:
    """
    /* BLAKE2b (RFC 7693), unkeyed, for the book.top record ids: blake2b(data,
       digest_size=16).hexdigest()[:24] (algostream.model.ids.child_id) without a Python
       call. Checked against hashlib in tests/unit/marketdata. */
    #include <stdint.h>
    #include <string.h>
    static const uint64_t fb_iv[8] = {
        0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
        0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
        0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
    static const uint8_t fb_sigma[12][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
        {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
        {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
        {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
        {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
        {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
        {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
        {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
        {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};
    static inline uint64_t fb_rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }
    #define FB_G(a, b, c, d, x, y) do { \
        a = a + b + (x); d = fb_rotr(d ^ a, 32); c = c + d; b = fb_rotr(b ^ c, 24); \
        a = a + b + (y); d = fb_rotr(d ^ a, 16); c = c + d; b = fb_rotr(b ^ c, 63); } while (0)
    static void fb_compress(uint64_t h[8], const uint8_t block[128], uint64_t t, int last) {
        uint64_t v[16], m[16];
        int i, r;
        for (i = 0; i < 16; i++) {
            uint64_t w = 0;
            int k;
            for (k = 7; k >= 0; k--) w = (w << 8) | block[8 * i + k];
            m[i] = w;
        }
        for (i = 0; i < 8; i++) { v[i] = h[i]; v[i + 8] = fb_iv[i]; }
        v[12] ^= t;
        if (last) v[14] = ~v[14];
        for (r = 0; r < 12; r++) {
            const uint8_t *s = fb_sigma[r];
            FB_G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
            FB_G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
            FB_G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
            FB_G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
            FB_G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
            FB_G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
            FB_G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
            FB_G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
        }
        for (i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
    }
    /* the first 24 hex digits of blake2b(prefix + data, digest_size=16) into out */
    static void fb_child_id(const char *prefix, size_t plen, const char *data, size_t n,
                            char out[24]) {
        static const char hex[] = "0123456789abcdef";
        uint64_t h[8];
        uint8_t block[128];
        size_t total = plen + n, done = 0, fill = 0;
        int i;
        for (i = 0; i < 8; i++) h[i] = fb_iv[i];
        h[0] ^= 0x01010000ULL ^ 16;
        /* the bytes of prefix + data, a block at a time; the last block (even a full
           one) is compressed with the final flag */
        while (1) {
            size_t want = 128 - fill, take;
            while (want && done < total) {
                if (done < plen) {
                    take = plen - done < want ? plen - done : want;
                    memcpy(block + fill, prefix + done, take);
                } else {
                    take = total - done < want ? total - done : want;
                    memcpy(block + fill, data + (done - plen), take);
                }
                done += take; fill += take; want -= take;
            }
            if (done == total) {
                memset(block + fill, 0, 128 - fill);
                fb_compress(h, block, (uint64_t) total, 1);
                break;
            }
            fb_compress(h, block, (uint64_t) done, 0);
            fill = 0;
        }
        for (i = 0; i < 12; i++) {
            uint8_t byte = (uint8_t) (h[i / 8] >> (8 * (i % 8)));
            out[2 * i] = hex[byte >> 4];
            out[2 * i + 1] = hex[byte & 15];
        }
    }
    """
    void fb_child_id(const char *prefix, size_t plen, const char *data, size_t n, char *out)


def child_id(bytes parent):
    """``algostream.model.ids.child_id("book.top", parent)`` in C (for the tests)."""
    cdef char out[24]
    fb_child_id(b"book.top|", 9, PyBytes_AS_STRING(parent), PyBytes_GET_SIZE(parent), out)
    return PyBytes_FromStringAndSize(out, 24).decode("ascii")

cdef object _ZERO = Decimal(0)
cdef object _TWO = Decimal(2)
#: ``FastBooks.handle``'s ``record`` for the BookTop record without the book.top bytes
cdef enum:
    _RECORD_ONLY = 2
RECORD_ONLY = _RECORD_ONLY
cdef object _INF = Decimal("Infinity")
cdef object _DECIMAL = Decimal
cdef object _float_json = msgspec.json.encode
cdef Py_ssize_t _KEPT = 1 << 16
cdef long long _I64_MAX = 9223372036854775807

cdef fb_i128 _P10[38]
_P10[0] = 1
for _i in range(1, 38):
    _P10[_i] = _P10[_i - 1] * 10
cdef fb_i128 _LIMIT = _P10[37]


cdef bint _fixed(const char *s, Py_ssize_t n, fb_i128 *out):
    """Canonical decimal text (``str(Decimal)``: digits, an optional point, an optional
    exponent) -> the value * 10**18, exactly; False if it does not fit."""
    cdef Py_ssize_t i = 0
    cdef fb_i128 coef = 0
    cdef int digits = 0, frac = 0, exp = 0, esign = 1, scale
    cdef bint neg = False, point = False
    cdef int c
    if i < n and s[i] == 45:  # -
        neg = True
        i += 1
    while i < n:
        c = s[i]
        if 48 <= c <= 57:
            if coef != 0 or c != 48:
                digits += 1
            if digits > 36:
                return False
            coef = coef * 10 + (c - 48)
            if point:
                frac += 1
        elif c == 46 and not point:  # .
            point = True
        else:
            break
        i += 1
    if i < n:
        if s[i] != 69 and s[i] != 101:  # E e
            return False
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            esign = -1 if s[i] == 45 else 1
            i += 1
        if i >= n:
            return False
        while i < n:
            if not (48 <= s[i] <= 57) or exp > 1000:
                return False
            exp = exp * 10 + (s[i] - 48)
            i += 1
    scale = esign * exp - frac + 18
    while scale < 0:
        if coef % 10 != 0:
            return False
        coef = coef // 10
        scale += 1
    if coef != 0:
        if scale > 37 or coef >= _LIMIT // _P10[scale]:
            return False
        coef = coef * _P10[scale]
    out[0] = -coef if neg else coef
    return True


@cython.freelist(256)
cdef class Num:
    """A checked decimal: its ``Decimal`` and canonical text (``str`` of that ``Decimal``),
    either made from the other when first needed, JSON fragment and fixed-point value."""

    cdef object _dec
    cdef str text  # (None: str(_dec), made by txt())
    cdef bytes _js
    cdef fb_i128 v

    cdef inline object decimal(self):
        if self._dec is None:
            self._dec = Decimal(self.text)  # (its str is the text: canonical)
        return self._dec

    cdef inline str txt(self):
        if self.text is None:
            self.text = str(self._dec)
        return self.text

    cdef inline bytes js(self):
        if self._js is None:
            self._js = b'"' + self.txt().encode("ascii") + b'"'
        return self._js

    @property
    def dec(self):
        return self.decimal()


# ------------------------------------------------- a Decimal's value without its text
#
# ``str(dec)`` (then parsing it) was most of a record's number: a C ``Decimal`` (libmpdec's
# ``mpd_t``: sign and special flags, exponent, digit count, coefficient in words of 10**19)
# is read here instead, its layout checked when this module loads against what
# ``as_tuple`` says of Decimals of every shape (not as expected: ``str`` as before).

cdef extern from *:
    """
    #include <stdint.h>
    typedef struct {
        uint8_t flags;
        int64_t exp, digits, len, alloc;
        uint64_t *data;
    } fb_mpd;
    typedef struct { PyObject_HEAD Py_hash_t hash; fb_mpd dec; } fb_dec_object;
    static inline fb_mpd *fb_dec(PyObject *o) { return &((fb_dec_object *) o)->dec; }
    """
    ctypedef struct fb_mpd:
        unsigned char flags
        long long exp, digits, len
        unsigned long long *data
    fb_mpd *fb_dec(object o)

cdef bint _DEC_LAYOUT = False  # the layout below read and checked
cdef unsigned long long _RADIX = 10000000000000000000ULL


cdef int _dec_value(object dec, fb_i128 *coef, long long *exp) noexcept:
    """A finite C Decimal's coefficient (up to 36 digits) and exponent: 1 (0 for a
    negative nonzero one, -1 for anything else: special, more digits)."""
    cdef fb_mpd *m = fb_dec(dec)
    if m.flags & 14 or m.digits > 36 or m.len > 2 or m.len < 1:
        return -1
    coef[0] = m.data[0]
    if m.len == 2:
        coef[0] += <fb_i128> m.data[1] * _RADIX
    exp[0] = m.exp
    if m.flags & 1 and coef[0] != 0:
        return 0
    return 1


cdef bint _scaled(fb_i128 coef, long long exp, bint price, fb_i128 *out) noexcept:
    """``coef * 10**exp`` (coef at or above zero, up to 36 digits) in the fixed point, as
    :func:`_keep_checked` decides its text: a price above zero, a quantity at or above it,
    the value * 10**18 whole and below 10**37."""
    cdef long long scale
    if coef == 0:
        out[0] = 0
        return not price
    scale = exp + 18
    if scale < 0:
        if scale < -37 or coef % _P10[-scale] != 0:
            return False
        coef = coef // _P10[-scale]
        scale = 0
    if scale > 37 or coef >= _LIMIT // _P10[scale]:
        return False
    out[0] = coef * _P10[scale]
    return True


def _decimal_layout():
    """Whether :func:`_dec_value` reads what ``as_tuple`` says of Decimals of every shape."""
    cdef fb_i128 coef
    cdef long long exp
    cdef int got
    import decimal
    try:
        import _decimal
    except ImportError:
        return False
    if decimal.Decimal is not _decimal.Decimal or Decimal is not _decimal.Decimal:
        return False
    samples = [
        "0", "-0", "0E-8", "0E+5", "1", "-1", "12.05530000", "1999.90000000", "1E+2",
        "1.00E-7", "-3.5", "9" * 19, "1" + "0" * 19, "9" * 36, "-" + "9" * 36,
        "123456789012345678.901234567890123456", "9" * 37, "1" + "0" * 40, "1E-30",
        "NaN", "-NaN", "sNaN", "Infinity", "-Infinity",
    ]  # fmt: skip
    for text in samples:
        dec = Decimal(text)
        t = dec.as_tuple()
        got = _dec_value(dec, &coef, &exp)
        special = not isinstance(t.exponent, int)
        big = len(t.digits) > 36
        if special or big:
            if got != -1:
                return False
            continue
        whole = int("".join(map(str, t.digits)))
        if got != (0 if t.sign and whole else 1):
            return False
        if _py_int(coef) != whole or exp != t.exponent:
            return False
    return True


cdef Num _num(object dec):
    """A :class:`Num` of ``dec`` (finite), or ``None`` if it is not fixed-point exact."""
    cdef Num num = Num.__new__(Num)
    num._dec = dec
    cdef Py_ssize_t n
    cdef const char *s
    num.text = str(dec)
    s = PyUnicode_AsUTF8AndSize(num.text, &n)
    if not _fixed(s, n, &num.v):
        return None
    return num


cdef bint _plain_fixed(const char *s, Py_ssize_t a, Py_ssize_t b, fb_i128 *out) noexcept:
    """Whether ``s[a:b]`` is a number in plain form, ``0|[1-9][0-9]*`` with an optional
    ``.[0-9]+``, whose ``str(Decimal(text))`` is the text itself: not zero, and at most
    five zeros between the point and the first significant digit (else ``Decimal`` writes
    an exponent), exact in the fixed point; its value * 10**18 in ``out``. False for
    anything else (the general path decides)."""
    cdef Py_ssize_t i = a, zeros = 0
    cdef fb_i128 coef = 0
    cdef int frac = 0, digits = 0
    cdef bint point = False, nonzero = False
    cdef char c
    if b - a > 40 or a >= b:
        return False
    if s[i] == 48 and i + 1 < b and s[i + 1] != 46:  # a leading zero
        return False
    while i < b:
        c = s[i]
        if 48 <= c <= 57:
            if c != 48:
                nonzero = True
            elif not nonzero and point:
                zeros += 1
            if nonzero:
                digits += 1
            coef = coef * 10 + (c - 48)
            if point:
                frac += 1
        elif c == 46 and not point and i > a and i + 1 < b:
            point = True
        else:
            return False
        i += 1
    if not nonzero or frac > 18 or digits > 36:
        return False  # zero (its text is 0E-8 and the like), or not fixed-point exact
    if s[a] == 48 and zeros > 5:
        return False
    if coef >= _LIMIT // _P10[18 - frac]:  # (before the product: it would overflow)
        return False
    out[0] = coef * _P10[18 - frac]
    return True


cdef Num _simple(bytes payload, Py_ssize_t a, Py_ssize_t b, bint price):
    """The :class:`Num` of a payload string in plain form (:func:`_plain_fixed`), or None
    for anything else (the general path decides)."""
    cdef fb_i128 v
    cdef Num num
    if not _plain_fixed(PyBytes_AS_STRING(payload), a, b, &v):
        return None
    num = Num.__new__(Num)
    num.v = v
    num._js = payload[a - 1 : b + 1]
    num.text = payload[a:b].decode("ascii")
    return num


#: id of a Decimal -> its Num, for taking books over: the decode keeps one Decimal per
#: price or quantity string (``algostream.model.fast``), so a snapshot's levels are mostly
#: Decimals seen before. The Num holds its Decimal, so an id kept here is not reused.
cdef dict _BY_DECIMAL = {}


cdef Num _kept_num(object dec):
    """:func:`_num` of ``dec``, made once per Decimal object (bounded like the decode's)."""
    cdef Num num = _BY_DECIMAL.get(id(dec))
    if num is not None and num._dec is dec:
        return num
    num = _num(dec)
    if num is not None:
        if len(_BY_DECIMAL) >= _KEPT:
            _BY_DECIMAL.clear()
        _BY_DECIMAL[id(dec)] = num
    return num


@cython.freelist(256)
cdef class _Level:
    cdef Num price  # the spelling the book keeps (its first)
    cdef Num qty  # the latest
    cdef object tkey  # the book-state table key holding it (None: no level store)
    cdef tuple pair  # (price, qty) Decimals as a top's level (None: not made for this qty)


cdef class _Side:
    """One side's levels: keys ascending (bids: price, asks: -price), best last."""

    cdef fb_i128 *keys
    cdef Py_ssize_t n, cap
    cdef list levels
    cdef bytes top_js  # JSON of the kept top (None: an update reached into it)
    cdef fb_i128 top_sum  # its total quantity, fixed-point (-1: too large to add here)
    cdef tuple top_tuple  # the kept top as the record's levels (None: not made yet)
    cdef Py_ssize_t top_len
    cdef bint top_known  # top_sum and top_len are the kept top's (False: derive them)

    def __cinit__(self):
        self.cap = 64
        self.keys = <fb_i128 *> malloc(self.cap * sizeof(fb_i128))
        if self.keys == NULL:
            raise MemoryError()
        self.n = 0
        self.levels = []
        self.top_js = None

    def __dealloc__(self):
        free(self.keys)

    cdef Py_ssize_t find(self, fb_i128 key):
        """The index of the first key >= ``key``."""
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.keys[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef void insert(self, Py_ssize_t i, fb_i128 key, _Level level) except *:
        cdef fb_i128 *grown
        if self.n == self.cap:
            grown = <fb_i128 *> realloc(self.keys, 2 * self.cap * sizeof(fb_i128))
            if grown == NULL:
                raise MemoryError()
            self.keys, self.cap = grown, 2 * self.cap
        memmove(&self.keys[i + 1], &self.keys[i], (self.n - i) * sizeof(fb_i128))
        self.keys[i] = key
        self.n += 1
        self.levels.insert(i, level)

    cdef void remove(self, Py_ssize_t i) except *:
        memmove(&self.keys[i], &self.keys[i + 1], (self.n - i - 1) * sizeof(fb_i128))
        self.n -= 1
        del self.levels[i]


cdef class FastBook:
    """One instrument owned by the compiled path."""

    cdef str inst
    cdef bytes inst_js, inst_key
    cdef _Side bids, asks
    cdef long long last, ts_event, last_seen
    cdef bint crossed, contiguous, warned
    cdef object cause  # the last update's payload (None: the processor's last_cause holds)
    cdef object cause_record  # the processor's last_cause when this book was taken over
    cdef bytes derived_js  # "best_bid"... "microprice" of the kept tops (None: derive)
    # the best levels' Nums the kept mid, spread and microprice were derived from
    cdef object mid_from_bp, mid_from_bq, mid_from_ap, mid_from_aq
    cdef bytes mid_js  # ',"best_bid":..,"best_ask":..,"mid":..,"spread":..,"imbalance":'
    cdef bytes micro_js  # ',"microprice":".."'
    cdef object mid, spread, micro, imbalance  # (the record's values of the above)
    cdef bint values_known  # imbalance, mid, spread, micro are the kept tops' (False: derive)
    cdef str prefix_b, prefix_a


cdef class _Parsed:
    """One ``md.book`` DELTA payload, parsed (no state touched)."""

    cdef Py_ssize_t inst0, inst1, rid0, rid1, lin0, lin1
    cdef long long ts_event, ts_init, first, final
    cdef list bids, asks  # [(Num price, Num qty), ...]
    cdef const char *rid  # the record id's bytes (p.rid1 - p.rid0 of them; in the cause)
    cdef object lineage  # the record id as a str (a record's: its own), or None
    # a record's ts_event, ts_init and final_update_id ints (None: made from the above)
    cdef object ts_event_int, ts_init_int, final_int


cdef object _decimal_num(dict kept, object dec, bint price, bint by_value):
    """The checked :class:`Num` of a record's Decimal, as :meth:`FastBooks.number` decides
    the string a payload would carry (``str(dec)``). ``by_value`` (only where the layout is
    known): read from the Decimal itself (:func:`_dec_value`; its text made only if asked
    for); else by that string: a price kept by it in ``kept`` (a book's prices recur), a
    quantity in plain form made afresh (most are new: a large table of them costs more in
    cache misses than the parse), any other kept by its string."""
    cdef Num num
    cdef const char *s
    cdef Py_ssize_t n
    cdef fb_i128 coef
    cdef long long exp
    cdef int got
    if type(dec) is not _DECIMAL:
        return None
    if by_value:
        got = _dec_value(dec, &coef, &exp)
        if got == 0:  # below zero
            return None
        if got == 1 and (coef != 0 or price or -1000 <= exp <= 1000):
            # (a zero quantity with an exponent past 1000: its text decides, below)
            num = Num.__new__(Num)
            if not _scaled(coef, exp, price, &num.v):
                return None
            num._dec = dec
            return num
    text = str(dec)
    if price:
        found = kept.get(text)
        if found is not None:
            return found
    s = PyUnicode_AsUTF8AndSize(text, &n)
    num = Num.__new__(Num)
    if _plain_fixed(s, 0, n, &num.v):  # (canonical: the text is str of the Decimal)
        num._dec, num.text = dec, text
        if price:
            if len(kept) >= _KEPT:
                kept.clear()
            kept[text] = num
        return num
    if not price:
        found = kept.get(text)
        if found is not None:
            return found
    return _keep_checked(kept, text, dec, price)


def number_of(dec, bint price, bint by_value):
    """``(value * 10**18, text)`` of the :class:`Num` a record's Decimal becomes, or None
    (for the tests: read from the Decimal, ``by_value``, or from its text)."""
    if by_value and not _DEC_LAYOUT:
        raise RuntimeError("the Decimal layout is not known here")
    cdef Num num = _decimal_num({}, dec, price, by_value)
    return None if num is None else (_py_int(num.v), num.txt())


cdef object _keep_checked(dict kept, object key, object dec, bint price):
    """The :class:`Num` of ``dec`` (a price above zero, a quantity not below it, finite,
    exact in the fixed point), kept in ``kept`` under ``key``; None when the Python path
    must decide it."""
    try:
        ok = (_ZERO < dec < _INF) if price else (_ZERO <= dec < _INF)
    except (InvalidOperation, ValueError, ArithmeticError):
        return None
    if not ok:
        return None
    num = _num(dec)
    if num is None:
        return None
    if len(kept) >= _KEPT:
        kept.clear()
    kept[key] = num
    return num


cdef class FastBooks:
    """The compiled path of one :class:`BookProcessor` (and its level store, if any)."""

    cdef object proc, store, pending_type, delete, decode_update, book_top, update_type
    cdef _Parsed parsed  # handle_update's (its fields set afresh for each update)
    cdef object delta, snapshot  # BookUpdateKind's
    cdef dict dec_prices, dec_quantities  # a Decimal's str -> its checked Num
    cdef frozenset top_fields  # a BookTop's field names (its fields set, all given)
    cdef readonly dict books  # instrument -> FastBook
    cdef dict by_raw  # instrument bytes -> FastBook
    cdef dict prices, quantities  # payload string bytes -> Num (checked)
    cdef set blocked  # instruments the compiled path cannot take until a snapshot
    cdef Py_ssize_t top_n
    cdef char *buf
    cdef Py_ssize_t len, cap
    cdef char rid[24]  # the last book.top's record id

    def __cinit__(self):
        self.cap = 4096
        self.buf = <char *> malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.buf)

    def __init__(self, proc, store=None, pending_type=dict, delete=None):
        from algostream.model.enums import BookUpdateKind
        from algostream.model.records import BookTop, BookUpdate

        self.book_top, self.update_type = BookTop, BookUpdate
        self.parsed = _Parsed.__new__(_Parsed)
        self.top_fields = frozenset(BookTop.model_fields)

        self.proc, self.store = proc, store
        self.pending_type, self.delete = pending_type, delete
        self.decode_update = BookUpdate.decode
        self.books, self.by_raw = {}, {}
        self.prices, self.quantities = {}, {}
        self.dec_prices, self.dec_quantities = {}, {}
        self.delta, self.snapshot = BookUpdateKind.DELTA, BookUpdateKind.SNAPSHOT
        self.blocked = set()
        self.top_n = proc.top_levels

    # ------------------------------------------------------------------ output buffer
    cdef void put(self, const char *s, Py_ssize_t n) except *:
        cdef char *grown
        cdef Py_ssize_t cap = self.cap
        if self.len + n > cap:
            while self.len + n > cap:
                cap *= 2
            grown = <char *> realloc(self.buf, cap)
            if grown == NULL:
                raise MemoryError()
            self.buf, self.cap = grown, cap
        memcpy(self.buf + self.len, s, n)
        self.len += n

    cdef void put_bytes(self, bytes b) except *:
        self.put(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    cdef void put_int(self, long long v) except *:
        """A non-negative integer in decimal."""
        cdef char tmp[24]
        cdef int i = 24
        cdef unsigned long long u = <unsigned long long> v
        while True:
            i -= 1
            tmp[i] = <char> (48 + u % 10)
            u = u // 10
            if u == 0:
                break
        self.put(tmp + i, 24 - i)

    # ------------------------------------------------------------------ parsing
    cdef Num number(self, bytes payload, Py_ssize_t a, Py_ssize_t b, bint price):
        """The checked :class:`Num` of a payload string (kept by its bytes), or None when
        the Python path must decide it (not a valid price / quantity, or not exact). A
        quantity in plain form is parsed, not kept (most are new: a large table of them
        costs more in cache misses than the parse)."""
        cdef dict kept = self.prices if price else self.quantities
        if not price:
            num = _simple(payload, a, b, price)
            if num is not None:
                return num
        raw = payload[a:b]
        found = kept.get(raw)
        if found is not None:
            return <Num> found
        num = _simple(payload, a, b, price) if price else None
        if num is not None:
            if len(kept) >= _KEPT:
                kept.clear()
            kept[raw] = num
            return num
        try:
            dec = Decimal(raw.decode("ascii"))
        except (InvalidOperation, ValueError, ArithmeticError):
            return None
        return _keep_checked(kept, raw, dec, price)

    cdef _Parsed parse(self, bytes payload):
        """The fields of a DELTA payload in ``Record.encode``'s exact form, or None."""
        cdef const char *s = PyBytes_AS_STRING(payload)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload), i = 0
        cdef _Parsed p = _Parsed.__new__(_Parsed)
        i = _lit(s, n, i, b'{"instrument":"', 15)
        p.inst0 = i
        i = _str(s, n, i)
        p.inst1 = i
        i = _lit(s, n, i, b'","ts_event":', 13)
        i = _int(s, n, i, &p.ts_event)
        i = _lit(s, n, i, b',"ts_init":', 11)
        i = _int(s, n, i, &p.ts_init)
        i = _lit(s, n, i, b',"record_id":"', 14)
        p.rid0 = i
        i = _str(s, n, i)
        p.rid1 = i
        i = _lit(s, n, i, b'","lineage_id":"', 16)
        p.lin0 = i
        i = _str(s, n, i)
        p.lin1 = i
        i = _lit(s, n, i, b'","kind":"DELTA","bids":', 24)
        if i < 0:
            return None
        if not (1 <= p.rid1 - p.rid0 <= 128 and p.lin1 - p.lin0 <= 128):
            return None
        p.bids = []
        i = self.levels(payload, s, n, i, p.bids)
        i = _lit(s, n, i, b',"asks":', 8)
        if i < 0:
            return None
        p.asks = []
        i = self.levels(payload, s, n, i, p.asks)
        i = _lit(s, n, i, b',"first_update_id":', 19)
        i = _int(s, n, i, &p.first)
        i = _lit(s, n, i, b',"final_update_id":', 19)
        i = _int(s, n, i, &p.final)
        i = _lit(s, n, i, b'}', 1)
        if i != n:
            return None
        return p

    cdef Py_ssize_t levels(self, bytes payload, const char *s, Py_ssize_t n, Py_ssize_t i,
                           list out) except? -2:
        cdef Py_ssize_t a, b, c, d
        if i < 0:
            return -1
        i = _lit(s, n, i, b'[', 1)
        if i < 0:
            return -1
        if i < n and s[i] == 93:  # ]
            return i + 1
        while True:
            i = _lit(s, n, i, b'["', 2)
            a = i
            i = _str(s, n, i)
            b = i
            i = _lit(s, n, i, b'","', 3)
            c = i
            i = _str(s, n, i)
            d = i
            i = _lit(s, n, i, b'"]', 2)
            if i < 0:
                return -1
            price = self.number(payload, a, b, True)
            qty = self.number(payload, c, d, False)
            if price is None or qty is None:
                return -1
            out.append((price, qty))
            if i < n and s[i] == 44:  # ,
                i += 1
                continue
            return _lit(s, n, i, b']', 1)

    # ------------------------------------------------------------------ the hot path
    def handle(self, bytes payload, long long now_ns, dict pending, int record=False):
        """Apply one ``md.book`` payload if it is the plain case: returns ``(instrument,
        key bytes, book.top bytes or None for a re-delivered update, the BookTop record
        when ``record`` and there is a top, else None)`` with the state writes made in
        ``pending[instrument]``; ``None``: the Python path takes it (the instrument's
        state was handed back to the processor first). ``now_ns`` < 0: the update's own
        ``ts_init`` (a backtest's simulated clock). ``record`` 2 (:data:`RECORD_ONLY`):
        the record without the ``book.top`` bytes (None in their place; a backtest keeps
        the record, not its bytes)."""
        cdef _Parsed p = self.parse(payload)
        cdef FastBook fb
        if p is None:
            self.give_back_raw(payload)
            return None
        if now_ns < 0:  # the record's own ts_init (a backtest's simulated clock)
            now_ns = p.ts_init
        fb = self.by_raw.get(payload[p.inst0:p.inst1])
        if fb is None:
            fb = self.adopt(payload[p.inst0:p.inst1].decode("ascii"))
            if fb is None:
                return None
        p.rid, p.lineage = PyBytes_AS_STRING(payload) + p.rid0, None
        return self.go(fb, p, payload, now_ns, pending, record)

    def handle_update(self, update, dict pending):
        """``handle(update.encode(), -1, pending, RECORD_ONLY)`` for a ``BookUpdate``
        record (a backtest from records), without the encoding and the parse: its
        Decimals become the path's numbers (kept by their strings, the payload's), under
        the same rules as the payload's strings; ``None``: the
        Python path takes it (the instrument handed back first). A ``BookUpdate`` (not a
        subclass) has its fields read from its ``__dict__`` (where pydantic keeps them;
        the class defines no descriptor of theirs), once, not through the model's
        attribute hook."""
        cdef _Parsed p
        cdef FastBook fb
        cdef Py_ssize_t n
        d = PyObject_GenericGetDict(update, NULL) if type(update) is self.update_type else None
        inst = _field(d, "instrument", update)
        kind = _field(d, "kind", update)
        if kind is not self.delta:
            self.settle(inst)
            if kind is self.snapshot:
                self.blocked.discard(inst)
            return None
        record_id = _field(d, "record_id", update)
        n = _plain_len(record_id)
        if not 1 <= n <= 128:
            self.settle(inst)
            return None
        n = _plain_len(_field(d, "lineage_id", update))
        if n < 0 or n > 128 or type(inst) is not str:
            self.settle(inst)
            return None
        p = self.parsed
        p.rid = PyUnicode_AsUTF8AndSize(record_id, &n)
        p.rid0, p.rid1, p.lineage = 0, n, record_id
        p.ts_event_int = _field(d, "ts_event", update)
        p.ts_init_int = _field(d, "ts_init", update)
        p.final_int = _field(d, "final_update_id", update)
        try:
            p.ts_event, p.ts_init = p.ts_event_int, p.ts_init_int
            p.first, p.final = _field(d, "first_update_id", update), p.final_int
        except (OverflowError, TypeError):  # past int64: the Python path
            self.settle(inst)
            return None
        if p.ts_event < 0 or p.ts_init < 0 or p.first < 0 or p.final < 0:
            self.settle(inst)
            return None
        p.bids = self.numbers(_field(d, "bids", update))
        p.asks = self.numbers(_field(d, "asks", update)) if p.bids is not None else None
        if p.asks is None:
            self.settle(inst)
            return None
        fb = self.books.get(inst)
        if fb is None:
            fb = self.adopt(inst)
            if fb is None:
                return None
        try:
            return self.go(fb, p, update, p.ts_init, pending, _RECORD_ONLY)
        finally:
            # (kept for the next update: no references)
            p.bids = p.asks = p.lineage = p.ts_event_int = p.ts_init_int = p.final_int = None

    cdef list numbers(self, object levels):
        """``(Num price, Num qty)`` of a record's levels, or None (the Python path)."""
        cdef list out = []
        for price, qty in levels:
            pn = self.decimal_number(price, True)
            qn = self.decimal_number(qty, False)
            if pn is None or qn is None:
                return None
            out.append((pn, qn))
        return out

    cdef object decimal_number(self, object dec, bint price):
        """The checked :class:`Num` of a Decimal (:func:`_decimal_num`)."""
        return _decimal_num(self.dec_prices if price else self.dec_quantities, dec, price,
                            _DEC_LAYOUT)

    cdef object go(self, FastBook fb, _Parsed p, object cause, long long now_ns, dict pending,
                   int record):
        """``handle`` once the update is parsed and its book owned here (``cause``: the
        update, as its payload or its record)."""
        if p.final <= fb.last:  # a re-delivered update
            fb.last_seen, fb.cause = now_ns, cause
            if fb.inst not in pending:
                pending[fb.inst] = self.pending_type()
            return fb.inst, fb.inst_key, None, None
        if fb.contiguous and p.first > fb.last + 1:  # a gap: the Python path says so
            self.settle(fb.inst)
            return None
        if _is_crossed(fb, p) != fb.crossed:  # a CROSSED or its end: the Python path
            self.settle(fb.inst)
            return None
        writes = pending.get(fb.inst)
        if writes is None:
            writes = pending[fb.inst] = self.pending_type()
        fb.last_seen, fb.cause = now_ns, cause
        bids_dirty = self.apply(fb, fb.bids, p.bids, False, writes)
        asks_dirty = self.apply(fb, fb.asks, p.asks, True, writes)
        fb.last, fb.ts_event = p.final, p.ts_event
        if record == _RECORD_ONLY:
            self.top_values(fb, p, bids_dirty, asks_dirty)
            return fb.inst, fb.inst_key, None, self.record(fb, p, now_ns)
        top = self.top(fb, p, now_ns, bids_dirty, asks_dirty)
        return fb.inst, fb.inst_key, top, self.record(fb, p, now_ns) if record else None

    cdef void top_values(self, FastBook fb, _Parsed p, bint bids_dirty,
                         bint asks_dirty) except *:
        """What :meth:`record` reads, as :meth:`top` leaves it, without the bytes: the
        record id, each side's kept top length and sum, the derived values."""
        if not fb.bids.top_known:
            _side_sum(self, fb.bids)
        if not fb.asks.top_known:
            _side_sum(self, fb.asks)
        if bids_dirty or asks_dirty or not fb.values_known:
            _values(fb)
        fb_child_id(b"book.top|", 9, p.rid, p.rid1 - p.rid0, self.rid)

    cdef object record(self, FastBook fb, _Parsed p, long long now_ns):
        """The ``BookTop`` record of the top just written (``BookProcessor._top``'s, equal
        field for field), for this worker's stages that take it in-process."""
        cdef _Side bids = fb.bids, asks = fb.asks
        both = bids.n and asks.n
        # ``algostream.model.fast.from_fields``, here without its Python call
        top = _new_object(self.book_top)  # (BookTop.__new__(BookTop))
        PyObject_GenericSetDict(
            top,
            {
                "instrument": fb.inst,
                "ts_event": p.ts_event if p.ts_event_int is None else p.ts_event_int,
                "ts_init": now_ns if p.ts_init_int is None else p.ts_init_int,
                "record_id": PyUnicode_DecodeASCII(self.rid, 24, NULL),
                "lineage_id": (
                    PyUnicode_DecodeASCII(p.rid, p.rid1 - p.rid0, NULL)
                    if p.lineage is None
                    else p.lineage
                ),
                "bids": _top_tuple(self, bids),
                "asks": _top_tuple(self, asks),
                "best_bid": (<_Level> bids.levels[bids.n - 1]).price.decimal() if bids.n else None,
                "best_ask": (<_Level> asks.levels[asks.n - 1]).price.decimal() if asks.n else None,
                "mid": fb.mid if both else None,
                "spread": fb.spread if both else None,
                "imbalance": fb.imbalance,
                "microprice": fb.micro if both else None,
                "update_id": p.final if p.final_int is None else p.final_int,
            },
            NULL,
        )
        PyObject_GenericSetAttr(top, "__pydantic_fields_set__", set(self.top_fields))
        PyObject_GenericSetAttr(top, "__pydantic_extra__", None)
        PyObject_GenericSetAttr(top, "__pydantic_private__", None)
        return top

    cdef bint apply(self, FastBook fb, _Side side, list changes, bint ask, object writes) except -1:
        """Set ``changes`` on ``side`` (0: remove) with their state writes; True when they
        reach into the kept top (``OrderBook.apply_delta``'s rule)."""
        cdef Num price, qty
        cdef _Level level
        cdef fb_i128 key
        cdef Py_ssize_t i
        cdef bint dirty = False, found
        cdef bint store = self.store is not None
        if not changes:
            return False
        if not side.top_known or side.top_len < self.top_n:
            dirty = True
        for price, qty in changes:
            key = -price.v if ask else price.v
            if not dirty and key >= side.keys[side.n - self.top_n]:
                dirty = True
            i = side.find(key)
            found = i < side.n and side.keys[i] == key
            if qty.v != 0:
                if found:
                    level = <_Level> side.levels[i]
                    if store and level.qty.v != qty.v:
                        writes[level.tkey] = qty.txt()
                    if level.qty is not qty:
                        level.qty, level.pair = qty, None
                else:
                    level = _Level.__new__(_Level)
                    level.price, level.qty = price, qty
                    if store:
                        level.tkey = (fb.prefix_a if ask else fb.prefix_b) + price.text
                        writes[level.tkey] = qty.txt()
                    side.insert(i, key, level)
            elif found:
                if store:
                    writes[(<_Level> side.levels[i]).tkey] = self.delete
                side.remove(i)
        if dirty:
            side.top_js = side.top_tuple = None
            side.top_known = False
        return dirty

    cdef bytes top(self, FastBook fb, _Parsed p, long long now_ns, bint bids_dirty,
                   bint asks_dirty):
        """The ``book.top`` record's bytes (``BookProcessor._top`` + ``BookTop.encode``)."""
        cdef char *rid = self.rid
        if fb.bids.top_js is None:
            _side_top(self, fb.bids)
        if fb.asks.top_js is None:
            _side_top(self, fb.asks)
        if bids_dirty or asks_dirty or fb.derived_js is None:
            fb.derived_js = _derived(fb)
        fb_child_id(b"book.top|", 9, p.rid, p.rid1 - p.rid0, rid)
        self.len = 0
        self.put(b'{"instrument":', 14)
        self.put_bytes(fb.inst_js)
        self.put(b',"ts_event":', 12)
        self.put_int(p.ts_event)
        self.put(b',"ts_init":', 11)
        self.put_int(now_ns)
        self.put(b',"record_id":"', 14)
        self.put(rid, 24)
        self.put(b'","lineage_id":"', 16)
        self.put(p.rid, p.rid1 - p.rid0)
        self.put(b'","bids":', 9)
        self.put_bytes(fb.bids.top_js)
        self.put(b',"asks":', 8)
        self.put_bytes(fb.asks.top_js)
        self.put_bytes(fb.derived_js)
        self.put(b',"update_id":', 13)
        self.put_int(p.final)
        self.put(b'}', 1)
        return PyBytes_FromStringAndSize(self.buf, self.len)

    # ------------------------------------------------------------------ hand-over
    def owns(self, str instrument):
        return instrument in self.books

    cdef void give_back_raw(self, bytes payload) except *:
        """A payload the compiled path does not take: hand its instrument back (found by
        the JSON's first field, if it is in the form written) and note a snapshot."""
        cdef const char *s = PyBytes_AS_STRING(payload)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        cdef Py_ssize_t i = _lit(s, n, 0, b'{"instrument":"', 15), j
        if i < 0:
            self.settle_all()  # no telling which instrument: every one goes back
            return
        j = _str(s, n, i)
        if j < 0:
            self.settle_all()
            return
        inst = payload[i:j].decode("ascii")
        self.settle(inst)
        if b'"kind":"SNAPSHOT"' in payload:
            self.blocked.discard(inst)

    cdef FastBook adopt(self, str inst):
        """Take ``inst`` over from the processor when it is synced and representable."""
        cdef FastBook fb
        cdef Num pn, qn
        cdef _Level level
        if inst in self.blocked:
            return None
        st = self.proc._books.get(inst)
        if st is None or not st.in_sync or st.stale or st.book.last_update_id is None:
            return None
        book = st.book
        mirror = None
        if self.store is not None:
            mirror = self.store._mirror.get(inst)
            if mirror is None:
                self.blocked.add(inst)
                return None
        fb = FastBook.__new__(FastBook)
        fb.inst = inst
        fb.inst_key = inst.encode()
        fb.inst_js = orjson.dumps(inst)
        fb.prefix_b, fb.prefix_a = f"{inst}|b|", f"{inst}|a|"
        fb.bids, fb.asks = _Side(), _Side()
        for prices, levels, side, ask, held in (
            (book._bid_prices, book._bids, fb.bids, False, mirror["b"] if mirror else None),
            (book._ask_prices[::-1], book._asks, fb.asks, True, mirror["a"] if mirror else None),
        ):
            if held is not None and len(held) != len(prices):
                self.blocked.add(inst)
                return None
            for price in prices:
                qty = levels[price]
                pn, qn = _kept_num(price), _kept_num(qty)
                if pn is None or qn is None:
                    self.blocked.add(inst)
                    return None
                level = _Level.__new__(_Level)
                level.price, level.qty = pn, qn
                if held is not None:
                    have = held.get(price)
                    if have is None or have[1] != qty:
                        self.blocked.add(inst)
                        return None
                    level.tkey = have[0]
                (<_Side> side).insert((<_Side> side).n, -pn.v if ask else pn.v, level)
        try:
            fb.last, fb.ts_event = book.last_update_id, book.ts_event
            fb.last_seen = st.last_seen_ns
        except OverflowError:  # beyond int64 (a restored state): the Python path keeps it
            self.blocked.add(inst)
            return None
        fb.crossed, fb.contiguous, fb.warned = st.crossed, st.contiguous, st.warned_unsynced
        fb.cause, fb.cause_record = None, st.last_cause
        self.books[inst] = fb
        self.by_raw[fb.inst_key] = fb
        return fb

    def settle(self, str inst):
        """Hand ``inst`` back: the processor's book, chain position, flags and the level
        store's mirror become this object's, and the Python path owns it again."""
        cdef FastBook fb = self.books.pop(inst, None)
        cdef _Level level
        if fb is None:
            return
        del self.by_raw[fb.inst_key]
        st = self.proc._books[inst]
        book = st.book
        bids, asks, held_b, held_a = {}, {}, {}, {}
        for level in fb.bids.levels:
            bids[level.price.decimal()] = level.qty.decimal()
            held_b[level.price.decimal()] = (level.tkey, level.qty.decimal())
        for level in reversed(fb.asks.levels):
            asks[level.price.decimal()] = level.qty.decimal()
            held_a[level.price.decimal()] = (level.tkey, level.qty.decimal())
        book._bids, book._asks = bids, asks
        book._bid_prices, book._ask_prices = list(bids), list(asks)
        book._bid_top = book._ask_top = None
        book._bid_qty = book._ask_qty = None
        book.last_update_id, book.ts_event = fb.last, fb.ts_event
        st.last_seen_ns, st.crossed = fb.last_seen, fb.crossed
        if fb.cause is not None:  # (a payload, or a record: handle_update's)
            st.last_cause = self.decode_update(fb.cause) if type(fb.cause) is bytes else fb.cause
        st.derived_from, st.derived = None, ()
        if self.store is not None:
            self.store._mirror[inst] = {"b": held_b, "a": held_a}

    def settle_all(self):
        for inst in list(self.books):
            self.settle(inst)

    def settle_silent(self, long long now_ns, long long after_ns):
        """Hand back each owned instrument silent for ``after_ns`` (a STALE is coming)."""
        cdef FastBook fb
        for fb in list(self.books.values()):
            if now_ns - fb.last_seen >= after_ns:
                self.settle(fb.inst)

    def drop(self, str inst):
        """Forget ``inst`` without handing it back (the processor's copy replaces it)."""
        cdef FastBook fb = self.books.pop(inst, None)
        if fb is not None:
            del self.by_raw[fb.inst_key]
        self.blocked.discard(inst)

    def meta(self, str inst):
        """``BookProcessor.state(inst, levels=False)`` of an owned instrument."""
        cdef FastBook fb = self.books[inst]
        state = {
            "book": {
                "instrument": inst,
                "last_update_id": fb.last,
                "ts_event": fb.ts_event,
                "bids": [],
                "asks": [],
            },
            "last_seen_ns": fb.last_seen,
            "in_sync": True,
            "ever_synced": True,
            "crossed": fb.crossed,
            "stale": False,
            "warned_unsynced": fb.warned,
        }
        if fb.cause is not None:
            d = orjson.loads(fb.cause if type(fb.cause) is bytes else fb.cause.encode())
            state["last_cause"] = {
                "instrument": d["instrument"],
                "ts_event": d["ts_event"],
                "ts_init": d["ts_init"],
                "record_id": d["record_id"],
                "lineage_id": d["lineage_id"],
                "kind": d["kind"],
                "first_update_id": d["first_update_id"],
                "final_update_id": d["final_update_id"],
            }
        else:
            return None  # nothing applied here yet: the processor's own state says it
        return state


# ---------------------------------------------------------------------- helpers


cdef inline Py_ssize_t _lit(const char *s, Py_ssize_t n, Py_ssize_t i, const char *lit,
                            Py_ssize_t k) noexcept:
    """``i`` past ``lit`` if the payload has it at ``i``, else -1."""
    cdef Py_ssize_t j
    if i < 0 or i + k > n:
        return -1
    for j in range(k):
        if s[i + j] != lit[j]:
            return -1
    return i + k


cdef inline Py_ssize_t _str(const char *s, Py_ssize_t n, Py_ssize_t i) noexcept:
    """The end of a JSON string's plain-ASCII body at ``i`` (the closing quote), -1 if it
    has an escape, a control or a non-ASCII byte (the Python path decides those)."""
    cdef unsigned char c
    if i < 0:
        return -1
    while i < n:
        c = <unsigned char> s[i]
        if c == 34:  # "
            return i
        if c == 92 or c < 32 or c > 126:
            return -1
        i += 1
    return -1


cdef inline Py_ssize_t _int(const char *s, Py_ssize_t n, Py_ssize_t i, long long *out) noexcept:
    """A JSON non-negative integer up to 2**63 - 1 at ``i`` (no leading zero)."""
    cdef Py_ssize_t start = i
    cdef long long v = 0
    cdef int d
    if i < 0 or i >= n:
        return -1
    while i < n and 48 <= s[i] <= 57:
        d = s[i] - 48
        if v > (_I64_MAX - d) // 10:
            return -1
        v = v * 10 + d
        i += 1
    if i == start or (s[start] == 48 and i - start > 1):
        return -1
    out[0] = v
    return i


cdef bint _best_after(_Side side, list changes, bint ask, fb_i128 *best):
    """The best key of ``side`` once ``changes`` are set (False: the side is empty)."""
    cdef Num price, qty
    cdef fb_i128 key, top = 0
    cdef bint have = False
    cdef Py_ssize_t i, j, m = len(changes)
    cdef bint changed
    # the best level set by the changes (the last write of a price wins)
    for i in range(m):
        price, qty = changes[i]
        key = -price.v if ask else price.v
        if have and key <= top:
            continue
        for j in range(i + 1, m):
            if (-(<Num> changes[j][0]).v if ask else (<Num> changes[j][0]).v) == key:
                qty = changes[j][1]
        if qty.v != 0:
            top, have = key, True
    # the best level of the book the changes leave alone
    i = side.n - 1
    while i >= 0:
        key = side.keys[i]
        changed = False
        for j in range(m):
            if (-(<Num> changes[j][0]).v if ask else (<Num> changes[j][0]).v) == key:
                changed = True
                break
        if not changed:
            if not have or key > top:
                top, have = key, True
            break
        i -= 1
    best[0] = top
    return have


cdef bint _is_crossed(FastBook fb, _Parsed p):
    """Whether the book is crossed (best bid >= best ask) once ``p`` is applied."""
    cdef fb_i128 bid, ask
    if not _best_after(fb.bids, p.bids, False, &bid):
        return False
    if not _best_after(fb.asks, p.asks, True, &ask):
        return False
    return bid >= -ask


cdef void _side_top(FastBooks fbs, _Side side) except *:
    """The JSON of ``side``'s best ``top_n`` levels, with their total (:func:`_side_sum`)."""
    cdef Py_ssize_t i, stop = side.n - fbs.top_n
    cdef _Level level
    if stop < 0:
        stop = 0
    fbs.len = 0
    fbs.put(b"[", 1)
    i = side.n - 1
    while i >= stop:
        level = <_Level> side.levels[i]
        fbs.put(b"[", 1)
        fbs.put_bytes(level.price.js())
        fbs.put(b",", 1)
        fbs.put_bytes(level.qty.js())
        fbs.put(b"],", 2)
        i -= 1
    if fbs.len > 1:
        fbs.len -= 1  # the last comma
    fbs.put(b"]", 1)
    side.top_js = PyBytes_FromStringAndSize(fbs.buf, fbs.len)
    _side_sum(fbs, side)


cdef void _side_sum(FastBooks fbs, _Side side) except *:
    """The total quantity and length of ``side``'s best ``top_n`` levels (summed as
    ``BookProcessor._top`` sums it: from ``Decimal(0)``, best first; -1: too large)."""
    cdef Py_ssize_t i, stop = side.n - fbs.top_n
    if stop < 0:
        stop = 0
    cdef fb_i128 total = 0
    i = side.n - 1
    while i >= stop:
        if total >= 0:
            total = total + (<_Level> side.levels[i]).qty.v if total < _LIMIT else -1
        i -= 1
    side.top_sum = total
    side.top_len = side.n - stop
    side.top_known = True


cdef tuple _top_tuple(FastBooks fbs, _Side side):
    """The kept top as ``((price, quantity), ...)`` Decimals, best first."""
    cdef Py_ssize_t i
    cdef _Level level
    cdef tuple out
    if side.top_tuple is None:
        out = PyTuple_New(side.top_len)
        for i in range(side.top_len):
            level = <_Level> side.levels[side.n - 1 - i]
            if level.pair is None:  # (a level's pair, kept while its quantity is)
                level.pair = (level.price.decimal(), level.qty.decimal())
            Py_INCREF(level.pair)
            PyTuple_SET_ITEM(out, i, level.pair)
        side.top_tuple = out
    return side.top_tuple


cdef object _py_int(fb_i128 x):
    """A 128-bit integer as a Python int."""
    if -_I64_MAX <= x <= _I64_MAX:
        return <long long> x
    if x < 0:
        return -_py_int(-x)
    return (<object> <unsigned long long> (x >> 64)) << 64 | (
        <object> <unsigned long long> (x & <fb_i128> 0xFFFFFFFFFFFFFFFF)
    )


cdef object _decimal_sum(_Side side):
    """The side's top quantity as ``BookProcessor._top`` sums it: from ``Decimal(0)``,
    best first."""
    cdef Py_ssize_t i
    total = _ZERO
    for i in range(side.n - 1, side.n - 1 - side.top_len, -1):
        total = total + (<_Level> side.levels[i]).qty.decimal()
    return total


# -------------------------------------------------------------- the imbalance, exactly
#
# ``float(Decimal(b - a) / Decimal(b + a))`` without the Decimals: the quotient is the
# exact one rounded half-even to the context's precision (the General Decimal Arithmetic
# division, libmpdec's), and ``float()`` of a Decimal reads its value correctly rounded
# (its text through the correctly rounded string-to-float); here the rounded quotient's
# coefficient is made with integers and its value read by ``int / int`` (CPython's
# ``long_true_divide``, correctly rounded too), so the double is the same. It runs only in
# a context where the Decimal division would do nothing else: rounding ROUND_HALF_EVEN,
# the precision known, no trap on Inexact or Rounded, an exponent range no quotient here
# reaches, and (for an inexact quotient) the Inexact and Rounded flags already raised, as
# the division would leave them; any other context takes the Decimal division itself. The
# context is read from the C ``decimal.Context`` object (its ``mpd_context_t``), whose
# layout is checked against what the Python attributes say when this module loads (not
# as expected: the Decimal division always).

cdef extern from *:
    """
    #include <stdint.h>
    typedef struct {
        int64_t prec, emax, emin;
        uint32_t trap, status, newtrap;
        int round, clamp, allcr;
    } fb_mpd_context;
    typedef struct { PyObject_HEAD fb_mpd_context ctx; } fb_context_object;
    static inline fb_mpd_context *fb_ctx(PyObject *o) { return &((fb_context_object *) o)->ctx; }
    """
    ctypedef struct fb_mpd_context:
        long long prec, emax, emin
        unsigned int trap, status
        int round
    fb_mpd_context *fb_ctx(object o)

from libc.stdint cimport uint32_t

cdef object _NOT_FAST = object()  # (what _fast_imbalance answers when it cannot)
cdef object _CONTEXT = None  # decimal.Context when its layout is as read here, else None
cdef object _getcontext = getcontext
cdef int _HALF_EVEN = -1
cdef uint32_t _INEXACT = 0, _ROUNDED = 0
#: 10**n as Python ints, n < 80 (the divisor of a rounded quotient's coefficient)
cdef tuple _POW10 = tuple(10**_n for _n in range(80))


cdef bint _one_bit(uint32_t x) noexcept:
    return x != 0 and (x & (x - 1)) == 0


def _context_layout():
    """``decimal.Context`` if reading its ``mpd_context_t`` here gives what its Python
    attributes say (precision, exponent range, rounding, the traps and flags of Inexact and
    Rounded, as a division sets them), else None; the bits and the rounding it reads."""
    cdef fb_mpd_context *m
    import decimal
    try:
        import _decimal
    except ImportError:
        return None
    if decimal.Context is not _decimal.Context or decimal.Decimal is not _decimal.Decimal:
        return None
    if decimal.Context.__basicsize__ < sizeof(fb_mpd_context) + sizeof(void *) * 2:
        return None
    modes = (
        decimal.ROUND_UP, decimal.ROUND_DOWN, decimal.ROUND_CEILING, decimal.ROUND_FLOOR,
        decimal.ROUND_HALF_UP, decimal.ROUND_HALF_DOWN, decimal.ROUND_05UP,
    )
    c = decimal.Context(
        prec=17, Emax=123457, Emin=-654321, rounding=decimal.ROUND_HALF_EVEN, traps=[], flags=[]
    )
    m = fb_ctx(c)
    if m.prec != 17 or m.emax != 123457 or m.emin != -654321 or m.trap != 0 or m.status != 0:
        return None
    half_even = m.round
    for mode in modes:
        c.rounding = mode
        if m.round == half_even:
            return None
    c.rounding = decimal.ROUND_HALF_EVEN
    if m.round != half_even:
        return None
    c.traps[decimal.Inexact] = True
    inexact = m.trap
    c.traps[decimal.Inexact] = False
    c.traps[decimal.Rounded] = True
    rounded = m.trap
    c.traps[decimal.Rounded] = False
    if not (_one_bit(inexact) and _one_bit(rounded)) or inexact == rounded or m.trap != 0:
        return None
    c.flags[decimal.Inexact] = True
    if m.status != inexact:
        return None
    c.flags[decimal.Rounded] = True
    if m.status != inexact | rounded:
        return None
    c.clear_flags()
    c.divide(decimal.Decimal(2), decimal.Decimal(4))  # exact: no flag
    if m.status != 0:
        return None
    c.divide(decimal.Decimal(1), decimal.Decimal(3))
    if m.status != inexact | rounded:
        return None
    c.prec = 28
    if m.prec != 28 or fb_ctx(decimal.getcontext()).prec != decimal.getcontext().prec:
        return None
    return decimal.Context, half_even, inexact, rounded


_layout = _context_layout()
_DEC_LAYOUT = _decimal_layout()
DECIMAL_LAYOUT = _DEC_LAYOUT  # (for the tests: whether records' numbers are read so)
if _layout is not None:
    _CONTEXT, _HALF_EVEN, _INEXACT, _ROUNDED = _layout


cdef int _digits(fb_i128 x) noexcept:
    """The number of decimal digits of ``0 < x < 10**37``."""
    cdef int k = 1
    while k < 38 and x >= _P10[k]:
        k += 1
    return k


cdef object _quotient(fb_i128 n, fb_i128 d, int prec, bint flagged, bint digits):
    """``float(Decimal(n) / Decimal(d))`` in a ROUND_HALF_EVEN context of precision
    ``prec`` (1 to 37), for ``0 < |n| <= d < 10**prec``; None when the quotient is inexact
    and ``flagged`` is False (the Decimal division then raises Inexact and Rounded).
    ``digits``: the rounded quotient instead, ``(coefficient, shift, exact)`` (the tests')."""
    cdef bint neg = n < 0, exact
    cdef int k, shift, step
    cdef fb_i128 c, r
    if neg:
        n = -n
    # the same quotient of smaller numbers: common powers of ten out
    step = 16
    while step:
        while n % _P10[step] == 0 and d % _P10[step] == 0:
            n = n // _P10[step]
            d = d // _P10[step]
        step >>= 1
    # 10**k <= n / d < 10**(k + 1), k <= 0; the quotient rounded to prec significant digits
    # is c * 10**-shift with c = round(n * 10**shift / d), shift = prec - 1 - k
    k = _digits(n) - _digits(d)
    if n * _P10[-k] < d:  # (n * 10**-k has the digits of d: below 10**37)
        k -= 1
    shift = prec - 1 - k
    if shift <= 37 and d < _P10[38 - prec]:  # n * 10**shift < d * 10**prec < 10**38
        c = n * _P10[shift] // d
        r = n * _P10[shift] - c * d
        if 2 * r > d or (2 * r == d and c & 1):
            c += 1
        if r != 0 and not flagged:
            return None
        exact = r == 0
        coefficient = _py_int(c)
    else:
        coefficient, rest = divmod(_py_int(n) * _POW10[shift], _py_int(d))
        twice, whole = 2 * rest, _py_int(d)
        if twice > whole or (twice == whole and coefficient & 1):
            coefficient += 1
        if rest and not flagged:
            return None
        exact = not rest
    if neg:
        coefficient = -coefficient
    if digits:
        return coefficient, shift, exact
    return coefficient / _POW10[shift]


cdef object _fast_imbalance(fb_i128 b, fb_i128 a):
    """:func:`_quotient` of the top sums ``b`` and ``a`` (fixed point, at or above zero)
    when the current context lets it say what the Decimal division would; ``_NOT_FAST``
    when it does not."""
    cdef fb_mpd_context *m
    cdef bint flagged
    if _CONTEXT is None:
        return _NOT_FAST
    ctx = _getcontext()
    if type(ctx) is not _CONTEXT:
        return _NOT_FAST
    m = fb_ctx(ctx)
    if (
        m.round != _HALF_EVEN
        or m.prec < 1
        or m.prec > 37
        or m.emin > -100
        or m.emax < 100
        or m.trap & (_INEXACT | _ROUNDED)
        or b + a >= _P10[<int> m.prec]
    ):
        return _NOT_FAST
    if b + a == 0:
        return None
    if b == a:
        return 0.0
    flagged = (m.status & (_INEXACT | _ROUNDED)) == (_INEXACT | _ROUNDED)
    out = _quotient(b - a, b + a, <int> m.prec, flagged, False)
    return _NOT_FAST if out is None else out


def fixed_imbalance(b, a):
    """The imbalance of top sums ``b`` and ``a`` (ints, the fixed point's: at or above zero,
    below 2**126) as :func:`_imbalance` computes it (for the tests): ``(value, fast)``,
    fast False where the context took the Decimal division."""
    cdef fb_i128 bb = _to_i128(b), aa = _to_i128(a)
    out = _fast_imbalance(bb, aa)
    if out is not _NOT_FAST:
        return out, True
    return (None if b + a == 0 else float(Decimal(b - a) / Decimal(b + a))), False


def rounded_quotient(n, d, int prec):
    """``(coefficient, shift, exact)``: ``n / d`` rounded half-even to ``prec`` significant
    digits is ``coefficient * 10**-shift`` as :func:`_quotient` makes it (for the tests; ``0
    < |n| <= d < 10**prec``, prec 1 to 37)."""
    if not (1 <= prec <= 37 and 0 < abs(n) <= d < _POW10[prec]):
        raise ValueError(f"not a quotient here: {n!r} / {d!r} at {prec}")
    return _quotient(_to_i128(abs(n)) * (-1 if n < 0 else 1), _to_i128(d), prec, True, True)


cdef fb_i128 _to_i128(object x) except? -1:
    if not 0 <= x < (1 << 126):
        raise ValueError(f"not a top sum here: {x!r}")
    return (<fb_i128> <unsigned long long> (x >> 64)) << 64 | <fb_i128> <unsigned long long> (
        x & 0xFFFFFFFFFFFFFFFF
    )


cdef object _imbalance(_Side bids, _Side asks):
    """The top's imbalance, ``float((bid_qty - ask_qty) / (bid_qty + ask_qty))`` or None.
    With both sums under 10**prec (fixed point, scaled alike) every Decimal addition of
    the Python path is exact, so the quotient of the same values, rounded once by the
    same context, is the same (:func:`_fast_imbalance` where the context lets it);
    otherwise the Decimal sums are made as it makes them."""
    cdef fb_i128 b = bids.top_sum, a = asks.top_sum
    if b >= 0 and a >= 0:
        out = _fast_imbalance(b, a)
        if out is not _NOT_FAST:
            return out
    prec = getcontext().prec
    if b >= 0 and a >= 0 and prec <= 37 and b + a < _P10[<int> prec]:
        if b + a == 0:
            return None
        return float(Decimal(_py_int(b - a)) / Decimal(_py_int(b + a)))
    bid_qty, ask_qty = _decimal_sum(bids), _decimal_sum(asks)
    total = bid_qty + ask_qty
    return None if total == 0 else float((bid_qty - ask_qty) / total)


cdef bytes _derived(FastBook fb):
    """``"best_bid":...,"microprice":...`` as ``BookProcessor._top`` derives them (the
    values by :func:`_values`; the mid's JSON again only when they moved)."""
    cdef _Side bids = fb.bids, asks = fb.asks
    _values(fb)
    imbalance = b"null" if fb.imbalance is None else _float_json(fb.imbalance)
    if bids.n and asks.n:
        if fb.mid_js is None:
            fb.mid_js = b"".join(
                (
                    b',"best_bid":', (<_Level> bids.levels[bids.n - 1]).price.js(),
                    b',"best_ask":', (<_Level> asks.levels[asks.n - 1]).price.js(),
                    b',"mid":"', str(fb.mid).encode(),
                    b'","spread":"', str(fb.spread).encode(),
                    b'","imbalance":',
                )
            )
            fb.micro_js = b',"microprice":"' + str(fb.micro).encode() + b'"'
        return fb.mid_js + imbalance + fb.micro_js
    return b"".join(
        (
            b',"best_bid":', (<_Level> bids.levels[bids.n - 1]).price.js() if bids.n else b"null",
            b',"best_ask":', (<_Level> asks.levels[asks.n - 1]).price.js() if asks.n else b"null",
            b',"mid":null,"spread":null,"imbalance":', imbalance,
            b',"microprice":null',
        )
    )


cdef void _values(FastBook fb) except *:
    """The top's derived values: the imbalance; mid, spread and microprice again only when
    a best level's price or quantity changed (the same Nums give the same Decimals), their
    JSON then dropped (``derived_js`` always: :func:`_derived` writes it again)."""
    cdef _Level b, a
    cdef _Side bids = fb.bids, asks = fb.asks
    fb.imbalance = _imbalance(bids, asks)
    fb.values_known = True
    fb.derived_js = None
    if bids.n and asks.n:
        b, a = <_Level> bids.levels[bids.n - 1], <_Level> asks.levels[asks.n - 1]
        if (
            fb.mid_from_bp is not b.price
            or fb.mid_from_bq is not b.qty
            or fb.mid_from_ap is not a.price
            or fb.mid_from_aq is not a.qty
        ):
            bid, bq = b.price.decimal(), b.qty.decimal()
            ask, aq = a.price.decimal(), a.qty.decimal()
            fb.mid = (bid + ask) / _TWO
            fb.spread = ask - bid
            fb.micro = (bid * aq + ask * bq) / (bq + aq)
            fb.mid_js = fb.micro_js = None
            fb.mid_from_bp, fb.mid_from_bq = b.price, b.qty
            fb.mid_from_ap, fb.mid_from_aq = a.price, a.qty


cdef Py_ssize_t _plain_len(object text):
    """The length of ``text`` if a payload would carry it as a plain JSON string (what
    ``_str`` takes: ASCII, no escape or control character), else -1."""
    cdef const char *s
    cdef Py_ssize_t n, i
    cdef unsigned char c
    if type(text) is not str:
        return -1
    s = PyUnicode_AsUTF8AndSize(text, &n)
    for i in range(n):
        c = <unsigned char> s[i]
        if c == 34 or c == 92 or c < 32 or c > 126:
            return -1
    return n


cdef inline object _field(object d, str name, object record):
    """``record.<name>``, from its ``__dict__`` ``d`` when given and holding it."""
    cdef PyObject *value
    if d is not None:
        value = PyDict_GetItem(d, name)
        if value is not NULL:
            return <object> value
    return getattr(record, name)


cdef extern from *:
    """
    static PyObject *fb_empty_args = NULL;
    /* ``cls.__new__(cls)`` without the call: the type's tp_new with no arguments */
    static PyObject *fb_new_object(PyObject *cls) {
        if (fb_empty_args == NULL && (fb_empty_args = PyTuple_New(0)) == NULL)
            return NULL;
        return ((PyTypeObject *) cls)->tp_new((PyTypeObject *) cls, fb_empty_args, NULL);
    }
    """
    object _new_object "fb_new_object" (object cls)
