package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/chaos/history"
)

// What a snapshot reads.
const (
	readFollows   = 1 << iota // following and followers of every user
	readPosts                 // every post of every user
	readTimelines             // every user's whole home timeline
)

// Bounds on paging, far above what a run writes: a read that reaches
// them is an error rather than an endless loop.
const (
	maxPostPages     = 100
	maxTimelinePages = 100
	readParallel     = 8               // reads in flight at once
	readTimeout      = 5 * time.Second // one page, after healing
)

// reader reads the cluster's state through given members, from the
// client namespace.
type reader struct {
	http   *http.Client
	tokens map[string]string // by user, for timelines
}

// snapshot reads what asks for of every user through every member.
func (r *reader) snapshot(ctx context.Context, members, users []string, what int) history.Snapshot {
	snap := history.Snapshot{}
	var mu sync.Mutex // guards the views' maps
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(readParallel)
	for _, m := range members {
		v := history.NewView()
		snap[m] = v
		fail := func(key string, err error) {
			mu.Lock()
			v.Errors[key] = err.Error()
			mu.Unlock()
		}
		for _, u := range users {
			if what&readFollows != 0 {
				for kind, dst := range map[string]map[string][]string{"following": v.Following, "followers": v.Followers} {
					g.Go(func() error {
						// {"following": [...]} or {"followers": [...]}
						var a map[string][]string
						if err := r.get(ctx, m, "/v1/users/"+u+"/"+kind, "", &a); err != nil {
							fail(kind+" "+u, err)
							return nil
						}
						mu.Lock()
						dst[u] = a[kind]
						mu.Unlock()
						return nil
					})
				}
			}
			if what&readPosts != 0 {
				g.Go(func() error {
					ps, err := r.pages(ctx, m, "/v1/users/"+u+"/posts", "", maxPostPages)
					if err != nil {
						fail("posts "+u, err)
						return nil
					}
					mu.Lock()
					v.Posts[u] = ps
					mu.Unlock()
					return nil
				})
			}
			if what&readTimelines != 0 {
				g.Go(func() error {
					ps, err := r.pages(ctx, m, "/v1/users/"+u+"/timeline", r.tokens[u], maxTimelinePages)
					if err != nil {
						fail("timeline "+u, err)
						return nil
					}
					ids := make([]string, len(ps))
					for i, p := range ps {
						ids[i] = p.ID
					}
					mu.Lock()
					v.Timelines[u] = ids
					mu.Unlock()
					return nil
				})
			}
		}
	}
	g.Wait()
	return snap
}

// pages reads every page of a list of posts.
func (r *reader) pages(ctx context.Context, member, path, token string, max int) ([]history.PostRef, error) {
	var out []history.PostRef
	before := ""
	for range max {
		q := url.Values{"limit": {"200"}}
		if before != "" {
			q.Set("before", before)
		}
		var a api.PostsAnswer
		if err := r.get(ctx, member, path+"?"+q.Encode(), token, &a); err != nil {
			return nil, err
		}
		for _, p := range a.Posts {
			out = append(out, history.PostRef{ID: p.ID.String(), Author: p.Author, Text: p.Text})
		}
		if a.Next == "" {
			return out, nil
		}
		before = a.Next
	}
	return nil, fmt.Errorf("%s through %s: more than %d pages", path, member, max)
}

// get reads one JSON answer.
func (r *reader) get(ctx context.Context, member, uri, token string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+member+uri, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		json.Unmarshal(b, &e)
		return fmt.Errorf("%d %s", resp.StatusCode, e.Error)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}
