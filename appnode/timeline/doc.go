// Package timeline reads home timelines: the reader's inbox (filled by
// package fanout), merged at read time with the posts of followees that
// are not pushed and, below the inbox's horizon, of every followee,
// each member merging the pages of the authors it answers for
// (timeline.go); and follower counts, cached (reader.go).
package timeline
