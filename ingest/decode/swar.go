package decode

import (
	"encoding/binary"
	"math/bits"
)

// Word-at-a-time byte classes for the two loops every event's strings go through: scanString (a user agent alone is ~150
// bytes) and printableASCII. Each function looks at 8 bytes of b read little endian, so byte k of the word is b[k], and sets
// the high bit of byte k for every byte the loop must stop at. A set bit above the lowest one may be spurious (a borrow
// from a stop byte below it), the lowest one never is, and no stop byte is missed: callers jump to the lowest set bit
// (firstStop) and look at that byte alone, and treat a zero mask as "eight plain bytes".
//
// The subtractions are the classic SWAR tests: (x - 0x01…01·n) &^ x has the high bit of every byte below n set (n ≤ 0x80), and
// a byte equal to c is a zero byte of x ^ 0x…cc.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func load64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// below marks the bytes of x below n (n ≤ 0x80); above the lowest marked byte the marks may be spurious.
func below(x uint64, n byte) uint64 { return (x - lsb*uint64(n)) &^ x & msb }

// equal marks the bytes of x equal to c, with the same caveat.
func equal(x uint64, c byte) uint64 { return below(x^(lsb*uint64(c)), 1) }

// stringStops marks what a JSON string's fast path cannot pass: the closing quote, a backslash, a control character (< 0x20)
// and any non-ASCII byte (UTF-8 is checked rune by rune).
func stringStops(x uint64) uint64 { return equal(x, '"') | equal(x, '\\') | below(x, 0x20) | x&msb }

// idStops marks what an id may not contain: space and control characters, DEL and non-ASCII bytes.
func idStops(x uint64) uint64 { return below(x, '!') | equal(x, 0x7f) | x&msb }

// firstStop is the index in its word of the lowest marked byte of a non-zero mask.
func firstStop(m uint64) int { return bits.TrailingZeros64(m) >> 3 }
