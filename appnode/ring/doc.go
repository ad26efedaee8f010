// Package ring is appnode's md5 consistent-hash ring.
//
// Every member (an advertised host:port) has VNodes positions on a
// 128-bit circle: position 0 is md5(address) and position i is
// md5(address + "#" + i), each read as a big-endian number. A key
// belongs to the first position strictly greater than md5(key),
// wrapping around past the top. With VNodes = 1 this is exactly the
// classic scheme. The preference list of a key is its owner followed by
// Replicas-1 further distinct members, chosen by the Placement.
//
// A Ring is immutable once built and safe for concurrent use; lookups
// allocate nothing (for keys up to MaxStackKey bytes) and take a few
// hundred nanoseconds at most. Other Go programs, such as the smart
// client in appnode/client, import this package to compute owners
// themselves.
package ring
