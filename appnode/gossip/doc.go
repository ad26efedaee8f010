// Package gossip is appnode's failure detector: hashicorp/memberlist
// (SWIM) among the configured members on a separate gossip port,
// encrypted with a key derived from the cluster secret.
//
// The configuration's members stay the ring's membership; the detector
// only says which of them are alive. It keeps trying to join configured
// members that it does not see alive, so a member that was declared dead
// (and forgotten by memberlist) or a partition that healed rejoins by
// itself, as serf does.
package gossip
