// Package peer is one member's view of the cluster: itself, the ring
// and the ring before the last change, which members the failure
// detector and its own requests say are alive, caught up and answering
// (Candidates, Alive, the member timeout), its hybrid logical clock,
// and the calls it makes to the others (Call, OnMembers, over package
// transport). Every subsystem of a member (replication, anti-entropy,
// fan-out, the API) reads the cluster through one *Cluster.
//
// Time: Now is the member's wall clock (a chaos build moves it, see
// appnode/node), used for whatever a member believes the time is —
// post ids, edge clocks, signatures, due times and ages of stored
// notes. Waits and timeouts (the member timeout, suspicion, backoff)
// are durations on the runtime's monotonic clock, which a moved wall
// clock does not disturb and testing/synctest fakes.
package peer
