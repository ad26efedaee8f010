// Command dnslb is an authoritative DNS server that answers a service
// name with the addresses of the targets that pass its health checks,
// rotated round-robin.
//
//	dnslb serve --config /etc/ringfront/dnslb.yaml
//	dnslb check-config --config /etc/ringfront/dnslb.yaml
//	dnslb status
package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ringfront/ringfront/dnslb/config"
	"github.com/ringfront/ringfront/dnslb/server"
	iconfig "github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dnslb:", err)
		os.Exit(1)
	}
}

// flags shared by the commands that read the config.
type configFlags struct {
	file   string
	fs     *pflag.FlagSet
	listen []string
	admin  string
}

func (f *configFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", "/etc/ringfront/dnslb.yaml", "config file (YAML)")
	cmd.Flags().StringSliceVar(&f.listen, "listen", nil, "addresses to serve DNS on (overrides listen)")
	cmd.Flags().StringVar(&f.admin, "admin-listen", "", "admin API address (overrides admin.listen)")
	f.fs = cmd.Flags()
}

// loadWithToken loads the config and reads the admin token, if one is
// configured: what both serve and check-config must get right.
func (f *configFlags) loadWithToken() (*config.Config, []byte, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	var token []byte
	if cfg.Admin.TokenFile != "" {
		if token, err = iconfig.ReadSecret(cfg.Admin.TokenFile); err != nil {
			return nil, nil, fmt.Errorf("admin.token_file: %w", err)
		}
	}
	return cfg, token, nil
}

func (f *configFlags) load() (*config.Config, error) {
	return config.Load(iconfig.Options{
		File:      f.file,
		EnvPrefix: config.EnvPrefix,
		Flags: map[string]*pflag.Flag{
			"listen":       f.fs.Lookup("listen"),
			"admin.listen": f.fs.Lookup("admin-listen"),
		},
	})
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "dnslb",
		Short:         "Health-checked authoritative round-robin DNS",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), checkConfigCmd(), statusCmd(), drainCmd("drain"), drainCmd("undrain"), reloadCmd())
	daemon.AddVersion(root)
	daemon.AddManPages(root)
	return root
}

func serveCmd() *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the DNS server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, token, err := cf.loadWithToken()
			if err != nil {
				return err
			}
			log := daemon.NewLogger(os.Stderr, cfg.Log, daemon.UnderJournald())
			ctx, stop := daemon.SignalContext(context.Background())
			defer stop()
			srv := server.New(cfg, server.Options{
				Logger:     log,
				Load:       cf.load,
				Notifier:   daemon.NewNotifier(log),
				AdminToken: token,
			})
			if err := srv.Start(ctx); err != nil {
				return err
			}
			return srv.Wait()
		},
	}
	cf.add(cmd)
	return cmd
}

func checkConfigCmd() *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the config and print it with defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := cf.loadWithToken()
			if err != nil {
				return err
			}
			out, err := iconfig.YAML(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# %s: valid\n", cf.file)
			for _, z := range cfg.Zones {
				for _, w := range z.Warnings {
					fmt.Fprintf(cmd.OutOrStdout(), "# warning: zone %s: %s\n", z.Origin, w)
				}
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

// adminFlags find and authenticate to a running dnslb's admin API.
type adminFlags struct {
	cf        configFlags
	addr      string
	tokenFile string
}

func (a *adminFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&a.cf.file, "config", "c", "/etc/ringfront/dnslb.yaml", "config file to read the admin address and token from, if it exists")
	cmd.Flags().StringVar(&a.addr, "admin", "", "admin API address (default: from the config, else 127.0.0.1:8053)")
	cmd.Flags().StringVar(&a.tokenFile, "token-file", "", "admin token file (default: from the config)")
	a.cf.fs = cmd.Flags()
}

func (a *adminFlags) resolve() (addr string, token []byte, err error) {
	addr, tokenFile := a.addr, a.tokenFile
	if _, statErr := os.Stat(a.cf.file); statErr == nil && (addr == "" || tokenFile == "") {
		cfg, err := a.cf.load()
		if err != nil {
			return "", nil, err
		}
		if addr == "" {
			addr = cfg.Admin.Listen
		}
		if tokenFile == "" {
			tokenFile = cfg.Admin.TokenFile
		}
	}
	if addr == "" {
		addr = "127.0.0.1:8053"
	}
	if tokenFile != "" {
		if token, err = iconfig.ReadSecret(tokenFile); err != nil {
			return "", nil, err
		}
	}
	return addr, token, nil
}

// call sends one request to the running dnslb's admin API.
func (a *adminFlags) call(ctx context.Context, method, path string, timeout time.Duration, out any) error {
	addr, token, err := a.resolve()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return daemon.AdminRequest(ctx, method, addr, token, path, out)
}

func statusCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every target's health and whether it is answered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st server.Status
			if err := af.call(cmd.Context(), "GET", "/v1/status", 5*time.Second, &st); err != nil {
				return err
			}
			printStatus(cmd, st)
			return nil
		},
	}
	af.add(cmd)
	return cmd
}

func printStatus(cmd *cobra.Command, st server.Status) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ZONE\tSERIAL")
	for _, z := range st.Zones {
		fmt.Fprintf(w, "%s\t%d\n", z.Origin, z.Serial)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SERVICE\tTARGET\tSTATE\tANSWERED\tFOR\tOK/FAIL\tLAST CHECK\tRESULT")
	var drained []server.TargetStatus
	sort.SliceStable(st.Targets, func(i, j int) bool { return st.Targets[i].Service < st.Targets[j].Service })
	now := time.Now()
	for _, t := range st.Targets {
		state := t.State
		if t.Drained {
			state += " (drained)"
			drained = append(drained, t)
		}
		ans := "no"
		if t.Answered {
			ans = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s ago\t%s\n", t.Service, t.Address, state, ans,
			age(now, t.Since), t.Successes, t.Failures, age(now, t.LastCheck), t.LastResult)
	}
	if len(drained) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "DRAINED\tTARGET\tBY\tSINCE\tREASON")
		for _, t := range drained {
			since := "-"
			if !t.DrainedSince.IsZero() {
				since = t.DrainedSince.Local().Format(time.RFC3339) + " (" + age(now, t.DrainedSince) + " ago)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Service, t.Address, t.DrainedBy, since, t.DrainReason)
		}
	}
	w.Flush()
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(100 * time.Millisecond).String()
}

func drainCmd(verb string) *cobra.Command {
	var af adminFlags
	var reason, by string
	short := "Stop answering a target whatever its health (kept across restarts)"
	if verb == "undrain" {
		short = "Answer a drained target again (if healthy)"
	}
	cmd := &cobra.Command{
		Use:   verb + " SERVICE ADDRESS",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t server.TargetStatus
			q := url.Values{"by": {by}}
			if reason != "" {
				q.Set("reason", reason)
			}
			path := "/v1/targets/" + url.PathEscape(strings.TrimSuffix(args[0], ".")+".") + "/" + url.PathEscape(args[1]) + "/" + verb + "?" + q.Encode()
			if err := af.call(cmd.Context(), "POST", path, 5*time.Second, &t); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s, drained=%v, answered=%v\n", t.Service, t.Address, t.State, t.Drained, t.Answered)
			return nil
		},
	}
	af.add(cmd)
	cmd.Flags().StringVar(&by, "by", whoami(), "who drains, as status shows it")
	if verb == "drain" {
		cmd.Flags().StringVar(&reason, "reason", "", "why, as status shows it")
	}
	return cmd
}

// whoami is the operator as user@host; sudo's caller rather than root.
func whoami() string {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	switch {
	case name == "":
		return host
	case host == "":
		return name
	}
	return name + "@" + host
}

func reloadCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Ask the running server to re-read its config (like SIGHUP, but reports errors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A reload waits for the first check of new targets.
			if err := af.call(cmd.Context(), "POST", "/v1/reload", 60*time.Second, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "reloaded")
			return nil
		},
	}
	af.add(cmd)
	return cmd
}
