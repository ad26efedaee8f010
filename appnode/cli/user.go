package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/client"
)

// User is `appnode user ...`: the command-line client, on package
// client.
func User() *cobra.Command {
	var server, token, caFile string
	var limit int
	var before string
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Use the service: create users, post, follow, read, rotate tokens",
	}
	cmd.PersistentFlags().StringVar(&server, "server", envOr("APPNODE_SERVER", "127.0.0.1:8081"), "any member, to fetch the ring from: host:port, http://host:port or https://host:port (comma-separated for several; env APPNODE_SERVER)")
	cmd.PersistentFlags().StringVar(&caFile, "ca-file", envOr("APPNODE_CA_FILE", ""), "PEM file of the CAs that sign the members' certificates, instead of the system's; makes host:port https (env APPNODE_CA_FILE)")
	cmd.PersistentFlags().StringVar(&token, "token", "", "the user's token (default: env APPNODE_TOKEN)")
	newClient := func() (*client.Client, error) {
		return client.New(strings.Split(server, ","), client.Options{CAFile: caFile})
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
			return explainTLS(f(ctx, c, cmd.OutOrStdout(), args), caFile)
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
		tokenCmd(run, tok),
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

// explainTLS adds what to do to an error verifying a member's
// certificate: which CA file would be trusted, or that its name does
// not match the address asked.
func explainTLS(err error, caFile string) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown) && caFile == "":
		return fmt.Errorf("%w (if the members' certificates come from your own CA, give it with --ca-file or APPNODE_CA_FILE)", err)
	case errors.As(err, &unknown):
		return fmt.Errorf("%w (the member's certificate is not signed by a CA in %s)", err, caFile)
	case errors.As(err, &host):
		return fmt.Errorf("%w (use the address or name the certificate names in --server)", err)
	}
	return err
}
