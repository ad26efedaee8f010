// Package antientropy finds and mends what replicas hold differently
// without a read to notice it: the periodic anti-entropy rounds between
// members, over a hash tree of users (antientropy.go); rebalancing
// after a ring change, pushing each user to the members that joined its
// preference list (rebalance.go); and a starting member's catching up
// on what it missed while it was down (catchup.go). All of them copy
// through replica.Replica's reconcile. One Syncer (syncer.go) runs them
// for a member.
package antientropy
