// Package heartbeat encodes and checks the datagrams two vipwatch
// daemons exchange. A heartbeat says who sent it (node name and boot
// id), its sequence number and send time, which VIPs the sender holds,
// its state, the partner heartbeat it acknowledges and (version 2) the
// one it echoes: the challenge answer by which a partner proves it
// hears the receiver's current run. Every datagram carries an
// HMAC-SHA256 over all of its bytes before the tag.
//
// A [Guard] checks incoming datagrams and returns a [Drop] reason for
// every datagram it refuses, so that each drop can be counted and
// tested. Guards are not safe for concurrent use.
package heartbeat
