package feed

import "bytes"

// Wins reports whether user record a wins over b, two records of the
// same name. Users are created once, but a name can be created on both
// sides of a partition, each side with its own token; when the copies
// meet (replication, read repair, anti-entropy), every replica keeps the
// winner: the record created first, and on a tie (the same millisecond)
// the one with the smaller token hash. The rule is a total order, so all
// replicas converge on the same record whatever order they see the
// copies in. A record never wins over itself.
func Wins(a, b User) bool {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c < 0
	}
	return bytes.Compare(a.TokenHash, b.TokenHash) < 0
}
