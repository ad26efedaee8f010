// Command appnode is the feed service on an md5 ring: `appnode serve`
// runs a member, `check-config` validates a config, `status` and
// `reload` ask a running member, and `appnode user ...` is a
// command-line client.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/appnode/gossip"
	"github.com/ringfront/ringfront/appnode/node"
	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

func main() {
	// The live heap is small (the block cache is pebble's own memory), and
	// every request allocates: collecting at 4x the live heap instead of
	// 2x trades a few MB for less CPU per request. GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "appnode:", err)
		os.Exit(1)
	}
}

// configFlags are the config keys that have command-line flags.
var configFlags = map[string]string{
	"listen": "listen", "advertise": "advertise", "members": "members",
	"data_dir": "data-dir", "routing": "routing", "admin.listen": "admin-listen",
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "appnode",
		Short:         "The feed service on an md5 ring",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var file string
	root.PersistentFlags().StringVarP(&file, "config", "c", "/etc/ringfront/appnode.yaml", "config file")
	fs := root.PersistentFlags()
	fs.String("listen", "", "API address (config: listen)")
	fs.String("advertise", "", "this member's address in the ring (config: advertise)")
	fs.StringSlice("members", nil, "every member's address (config: members)")
	fs.String("data-dir", "", "database directory (config: data_dir)")
	fs.String("routing", "", "forward or redirect (config: routing)")
	fs.String("admin-listen", "", "admin address (config: admin.listen)")
	load := func(cmd *cobra.Command) (node.Config, error) {
		flags := map[string]*pflag.Flag{}
		for key, name := range configFlags {
			flags[key] = cmd.Flags().Lookup(name)
		}
		var cfg node.Config
		err := config.Load(config.Options{File: file, EnvPrefix: "APPNODE", Flags: flags}, &cfg)
		return cfg, err
	}
	root.AddCommand(serveCmd(load), checkConfigCmd(load), userCmd(), proxyCmd())
	root.AddCommand(adminCmds(&file, load)...)
	daemon.AddVersion(root)
	daemon.AddManPages(root)
	return root
}

type loader func(*cobra.Command) (node.Config, error)

func serveCmd(load loader) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run this member",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			log := daemon.NewLogger(os.Stderr, cfg.Log, daemon.UnderJournald()).With("component", "appnode")
			n, err := node.New(cfg, func() (node.Config, error) { return load(cmd) }, log)
			if err != nil {
				return err
			}
			ctx, stop := daemon.SignalContext(context.Background())
			defer stop()
			return n.Run(ctx)
		},
	}
}

func checkConfigCmd(load loader) *cobra.Command {
	return &cobra.Command{
		Use:   "check-config",
		Short: "Validate the config and print it as it will be used",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			rg, err := cfg.Ring()
			if err != nil {
				return err
			}
			out, err := config.YAML(cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			fmt.Fprintf(cmd.OutOrStdout(), "# %s\n", rg)
			return nil
		},
	}
}

// adminCmds are status and reload, on the running member's admin API
// (--admin, else admin.listen from the config).
func adminCmds(file *string, load loader) []*cobra.Command {
	target := daemon.AdminTarget{
		Program: "appnode", Default: node.DefaultAdmin, ConfigFile: func() string { return *file },
		Load: func(cmd *cobra.Command) (daemon.AdminConfig, error) {
			cfg, err := load(cmd)
			return cfg.Admin, err
		},
	}
	status := daemon.StatusCommand(target, "Show a running member's ring and store", printStatus)
	return []*cobra.Command{status, daemon.ReloadCommand(target, 30*time.Second)}
}

func printStatus(w io.Writer, st node.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "node\t%s\n", st.Node)
	fmt.Fprintf(tw, "advertise\t%s\n", st.Self)
	fmt.Fprintf(tw, "routing\t%s\n", st.Routing)
	fmt.Fprintf(tw, "ring\t%s (%d vnodes, %d replicas, %s)\n", st.Ring.Version, st.Ring.VNodes, st.Ring.Replicas, st.Ring.Placement)
	for i, m := range st.Ring.Members {
		label := ""
		if i == 0 {
			label = "members"
		}
		self := ""
		if m == st.Self {
			self = " (this member)"
		}
		fmt.Fprintf(tw, "%s\t%s%s\n", label, m, self)
	}
	if st.Members > 0 {
		fmt.Fprintf(tw, "members alive\t%d of %d\n", st.MembersAlive, st.Members)
	}
	if st.Isolated != "" {
		fmt.Fprintf(tw, "ISOLATED\tthis member %s\n", st.Isolated)
	}
	if st.CatchingUp {
		fmt.Fprintf(tw, "catching up\tyes: its users are answered by caught-up replicas meanwhile\n")
	}
	for i, l := range st.Liveness {
		label := ""
		if i == 0 {
			label = "liveness"
		}
		state := l.State.String()
		since := ""
		switch {
		case l.Member == st.Self:
			state = "alive (this member)"
		case !l.Since.IsZero():
			since = " since " + l.Since.UTC().Format(time.RFC3339)
		case l.State == gossip.Unknown:
			state = "not seen yet"
		}
		extra := ""
		if l.CatchingUp && l.Member != st.Self {
			extra += ", catching up"
		}
		if l.Gossip != "" && l.Member != st.Self {
			extra += ", gossip " + l.Gossip
		}
		if l.Problem != "" {
			extra += ": " + l.Problem
		}
		fmt.Fprintf(tw, "%s\t%s %s%s%s\n", label, l.Member, state, since, extra)
	}
	hinted := slices.Sorted(maps.Keys(st.HintsByMember))
	for i, m := range hinted {
		label := ""
		if i == 0 {
			label = "hints"
		}
		fmt.Fprintf(tw, "%s\t%d waiting for %s\n", label, st.HintsByMember[m], m)
	}
	if rb := st.Rebalance; rb.To != "" {
		state := "done"
		if rb.Pending > 0 {
			state = fmt.Sprintf("%d pending", rb.Pending)
		}
		fmt.Fprintf(tw, "rebalance\t%s -> %s: %d users streamed, %s\n", rb.From, rb.To, rb.Done, state)
	}
	if st.EdgeNotes > 0 {
		fmt.Fprintf(tw, "edge notes\t%d follow edges to confirm with their other side\n", st.EdgeNotes)
	}
	if st.Outbox > 0 || st.Streams > 0 {
		fmt.Fprintf(tw, "fan-out\t%d deliveries waiting, %d live streams\n", st.Outbox, st.Streams)
	}
	for i, l := range st.Links {
		label := ""
		if i == 0 {
			label = "forwarding"
		}
		switch {
		case !l.HTTPUntil.IsZero():
			fmt.Fprintf(tw, "%s\t%s over HTTP until %s: %s\n", label, l.Member, l.HTTPUntil.UTC().Format(time.RFC3339), l.Reason)
		case l.Open > 0:
			fmt.Fprintf(tw, "%s\t%s over %d member links\n", label, l.Member, l.Open)
		default:
			fmt.Fprintf(tw, "%s\t%s no link open (opened on the next forward)\n", label, l.Member)
		}
	}
	if st.LinksServed > 0 {
		fmt.Fprintf(tw, "links served\t%d from other members\n", st.LinksServed)
	}
	fmt.Fprintf(tw, "store\t%.1f MiB on disk", float64(st.Store.DiskBytes)/(1<<20))
	if st.Store.WritesFail {
		fmt.Fprint(tw, ", FAILED (restart the node)")
	}
	fmt.Fprintln(tw)
	tw.Flush()
}

// userCmd is the command-line client, on appnode/client.
func userCmd() *cobra.Command {
	var server, token string
	var limit int
	var before string
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Use the service: create users, post, follow, read",
	}
	cmd.PersistentFlags().StringVar(&server, "server", envOr("APPNODE_SERVER", "127.0.0.1:8081"), "any member, to fetch the ring from (comma-separated for several; env APPNODE_SERVER)")
	cmd.PersistentFlags().StringVar(&token, "token", "", "the user's token (default: env APPNODE_TOKEN)")
	newClient := func() (*client.Client, error) {
		return client.New(strings.Split(server, ","), client.Options{})
	}
	tok := func() (string, error) {
		if token == "" {
			token = os.Getenv("APPNODE_TOKEN")
		}
		if token == "" {
			return "", errors.New("this needs the user's token: --token or APPNODE_TOKEN")
		}
		return token, nil
	}
	run := func(f func(ctx context.Context, c *client.Client, w io.Writer, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			return f(ctx, c, cmd.OutOrStdout(), args)
		}
	}
	printPosts := func(w io.Writer, page api.PostsAnswer) {
		for _, p := range page.Posts {
			fmt.Fprintf(w, "%s  %s  @%s: %s\n", p.ID, p.Created.Local().Format(time.DateTime), p.Author, p.Text)
		}
		if page.Next != "" {
			fmt.Fprintf(w, "(more: --before %s)\n", page.Next)
		}
	}
	pageFlags := func(c *cobra.Command) *cobra.Command {
		c.Flags().IntVar(&limit, "limit", 0, "posts per page (default 20)")
		c.Flags().StringVar(&before, "before", "", "cursor: show posts older than this id")
		return c
	}
	cmd.AddCommand(
		&cobra.Command{
			Use: "create NAME", Short: "Create a user and print its token (shown once)", Args: cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
				ans, err := c.CreateUser(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "created %s\ntoken %s\n(keep the token: it is not shown again; export APPNODE_TOKEN=%s)\n", ans.Name, ans.Token, ans.Token)
				return nil
			}),
		},
		&cobra.Command{
			Use: "post NAME TEXT...", Short: "Post as NAME", Args: cobra.MinimumNArgs(2),
			RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
				t, err := tok()
				if err != nil {
					return err
				}
				p, err := c.Post(ctx, args[0], t, strings.Join(args[1:], " "))
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "posted %s\n", p.ID)
				return nil
			}),
		},
		pageFlags(&cobra.Command{
			Use: "feed NAME", Short: "Show NAME's posts, newest first", Args: cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
				page, err := c.Posts(ctx, args[0], client.Page{Limit: limit, Before: before})
				if err != nil {
					return err
				}
				printPosts(w, page)
				return nil
			}),
		}),
		pageFlags(&cobra.Command{
			Use: "timeline NAME", Short: "Show NAME's home timeline (needs NAME's token)", Args: cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
				t, err := tok()
				if err != nil {
					return err
				}
				page, err := c.Timeline(ctx, args[0], t, client.Page{Limit: limit, Before: before})
				if err != nil {
					return err
				}
				printPosts(w, page)
				return nil
			}),
		}),
		followCmd(run, tok),
		streamCmd(newClient, tok),
		&cobra.Command{
			Use: "following NAME", Short: "List whom NAME follows", Args: cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
				names, err := c.Following(ctx, args[0])
				for _, n := range names {
					fmt.Fprintln(w, n)
				}
				return err
			}),
		},
		&cobra.Command{
			Use: "followers NAME", Short: "List who follows NAME", Args: cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
				names, err := c.Followers(ctx, args[0])
				for _, n := range names {
					fmt.Fprintln(w, n)
				}
				return err
			}),
		},
		&cobra.Command{
			Use: "lookup NAME", Short: "Show which members hold NAME (owner first)", Args: cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
				pref, err := c.Lookup(ctx, args[0])
				if err != nil {
					return err
				}
				r, _ := c.Ring(ctx)
				fmt.Fprintf(w, "owner %s\npreference %s\nring %s\n", pref[0], strings.Join(pref, " "), r.Version())
				return nil
			}),
		},
	)
	return cmd
}

func followCmd(run func(func(context.Context, *client.Client, io.Writer, []string) error) func(*cobra.Command, []string) error, tok func() (string, error)) *cobra.Command {
	var remove bool
	c := &cobra.Command{
		Use: "follow NAME OTHER", Short: "Make NAME follow OTHER (--remove to unfollow)", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
			t, err := tok()
			if err != nil {
				return err
			}
			if remove {
				err = c.Unfollow(ctx, args[0], t, args[1])
			} else {
				err = c.Follow(ctx, args[0], t, args[1])
			}
			if err != nil {
				return err
			}
			verb := "follows"
			if remove {
				verb = "no longer follows"
			}
			fmt.Fprintf(w, "%s %s %s\n", args[0], verb, args[1])
			return nil
		}),
	}
	c.Flags().BoolVar(&remove, "remove", false, "unfollow instead")
	return c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
