// Command vipwatch keeps a pair of machines' VIPs answering: each
// daemon holds its home VIPs, watches its partner with signed UDP
// heartbeats, and takes the partner's VIPs (netlink + gratuitous ARP)
// while the partner is down.
//
//	vipwatch run           run the daemon
//	vipwatch check-config  validate and print the effective config
//	vipwatch status        print the running daemon's view of the pair
//	vipwatch handover      give this node's home VIPs to the partner, no request lost
//	vipwatch takeback      take them back
//	vipwatch release-all   remove every address vipwatch put on the interface
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/vipwatch/iface"
	"github.com/ringfront/ringfront/vipwatch/member"
)

const defaultConfig = "/etc/ringfront/vipwatch.yaml"

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "vipwatch:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var file string
	root := &cobra.Command{
		Use:           "vipwatch",
		Short:         "Paired VIP failover with netlink and gratuitous ARP",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&file, "config", "c", defaultConfig, "config file (YAML)")
	load := func(flags *pflag.FlagSet) (member.Config, error) {
		var cfg member.Config
		fl := map[string]*pflag.Flag{}
		if f := flags.Lookup("admin-listen"); f != nil {
			fl["admin.listen"] = f
		}
		err := config.Load(config.Options{File: file, EnvPrefix: "VIPWATCH", Flags: fl}, &cfg)
		return cfg, err
	}

	run := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return err
			}
			return runDaemon(cmd.Context(), cfg, func() (member.Config, error) { return load(cmd.Flags()) })
		},
	}
	run.Flags().String("admin-listen", "", "admin listener address (overrides admin.listen)")

	check := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the config and print it with defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return err
			}
			// The secret lives on the machine that runs the daemon, not
			// necessarily where a config is checked: say what is wrong
			// with it, but judge only the config.
			if _, err := config.ReadSecret(cfg.SecretFile); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: secret_file: %v (vipwatch run will refuse to start)\n", err)
			}
			out, err := config.YAML(&cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		},
	}

	var jsonOut bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Print the running daemon's view: who holds which VIP, the partner, counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return err
			}
			var token []byte
			if cfg.Admin.TokenFile != "" {
				if token, err = config.ReadSecret(cfg.Admin.TokenFile); err != nil {
					return fmt.Errorf("admin.token_file: %w", err)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			var st member.Status
			if err := daemon.AdminRequest(ctx, "GET", cfg.Admin.Listen, token, "/v1/status", &st); err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprint(cmd.OutOrStdout(), member.FormatStatus(st))
			return nil
		},
	}
	status.Flags().String("admin-listen", "", "admin address of the daemon (overrides admin.listen)")
	status.Flags().BoolVar(&jsonOut, "json", false, "print the raw JSON status")

	// adminClient reads the config for the admin address and token.
	adminClient := func(cmd *cobra.Command) (member.Config, []byte, error) {
		cfg, err := load(cmd.Flags())
		if err != nil {
			return cfg, nil, err
		}
		var token []byte
		if cfg.Admin.TokenFile != "" {
			if token, err = config.ReadSecret(cfg.Admin.TokenFile); err != nil {
				return cfg, nil, fmt.Errorf("admin.token_file: %w", err)
			}
		}
		return cfg, token, nil
	}
	var handoverVIPs []string
	var wait time.Duration
	move := func(cmd *cobra.Command, path string, done func(member.Status) bool) error {
		cfg, token, err := adminClient(cmd)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second+wait)
		defer cancel()
		var st member.Status
		if err := daemon.AdminRequest(ctx, "POST", cfg.Admin.Listen, token, path, &st); err != nil {
			return err
		}
		// The move completes in a heartbeat or two; report when it has.
		deadline := time.Now().Add(wait)
		for !done(st) {
			if time.Now().After(deadline) {
				fmt.Fprint(cmd.OutOrStdout(), member.FormatStatus(st))
				return fmt.Errorf("not complete after %v (see the status above)", wait)
			}
			time.Sleep(50 * time.Millisecond)
			if err := daemon.AdminRequest(ctx, "GET", cfg.Admin.Listen, token, "/v1/status", &st); err != nil {
				return err
			}
		}
		fmt.Fprint(cmd.OutOrStdout(), member.FormatStatus(st))
		return nil
	}
	handover := &cobra.Command{
		Use:   "handover",
		Short: "Give this node's home VIPs (or those named with --vip) to the partner without losing a request",
		Long: "handover asks the running daemon to give its home VIPs to the partner: the partner\n" +
			"claims and announces them, then this node releases them. They stay with the partner\n" +
			"until `vipwatch takeback` (or until the partner stops). It waits until the partner\n" +
			"holds them (--wait) and prints the status.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"vip": handoverVIPs}
			return move(cmd, "/v1/handover?"+q.Encode(), func(st member.Status) bool {
				return len(st.Gives) > 0 && handedOver(st)
			})
		},
	}
	handover.Flags().StringArrayVar(&handoverVIPs, "vip", nil, "home VIP to hand over (address or prefix; repeatable; default: all)")
	takeback := &cobra.Command{
		Use:   "takeback",
		Short: "Take the home VIPs back from the partner after a handover, without losing a request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return move(cmd, "/v1/takeback", func(st member.Status) bool {
				if len(st.Gives) > 0 {
					return true // the tracked service fails: they stay given
				}
				for _, v := range st.VIPs {
					if v.Home == st.Node && v.Holder != st.Node {
						return false
					}
				}
				return true
			})
		},
	}
	for _, c := range []*cobra.Command{handover, takeback} {
		c.Flags().String("admin-listen", "", "admin address of the daemon (overrides admin.listen)")
		c.Flags().DurationVar(&wait, "wait", 5*time.Second, "how long to wait for the move to complete")
	}

	var ifname, runtimeDir string
	release := &cobra.Command{
		Use:   "release-all",
		Short: "Remove every address vipwatch put on the interface (systemd runs this as ExecStopPost)",
		Long: "release-all removes every address vipwatch added to the interface: IPv4 addresses\n" +
			"carrying its label, and IPv6 addresses recorded in its runtime directory (Linux labels\n" +
			"IPv4 addresses only). So a daemon that crashed or was killed leaves no VIP behind.\n" +
			"With --interface it needs no config file. When the config cannot be read (a broken\n" +
			"edit: systemd runs this after the daemon died, maybe because of it) it cleans every\n" +
			"interface, so no VIP stays behind either way.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := []string{ifname}
			if ifname == "" {
				cfg, err := load(cmd.Flags())
				switch {
				case err != nil:
					fmt.Fprintf(cmd.ErrOrStderr(), "vipwatch: %v; cleaning every interface\n", err)
					if names, err = iface.Names(); err != nil {
						return err
					}
				default:
					names = []string{cfg.Interface}
					if !cmd.Flags().Changed("runtime-dir") {
						runtimeDir = cfg.RuntimeDir
					}
				}
			}
			if err := member.CheckPrivileges(); err != nil {
				return err
			}
			var errs []error
			for _, name := range names {
				ifc, err := iface.Open(name, runtimeDir)
				if err != nil {
					if len(names) > 1 {
						continue // an interface vipwatch cannot label is not one of its own
					}
					return err
				}
				removed, err := member.Cleanup(ifc)
				for _, p := range removed {
					fmt.Fprintf(cmd.OutOrStdout(), "removed %v from %s\n", p, name)
				}
				errs = append(errs, err)
				if len(removed) == 0 && len(names) == 1 {
					fmt.Fprintf(cmd.OutOrStdout(), "no vipwatch addresses on %s\n", name)
				}
			}
			return errors.Join(errs...)
		},
	}
	release.Flags().StringVarP(&ifname, "interface", "i", "", "interface to clean (default: the config's interface)")
	release.Flags().StringVar(&runtimeDir, "runtime-dir", member.DefaultRuntimeDir, "directory with vipwatch's record of its IPv6 addresses (default: the config's runtime_dir)")

	root.AddCommand(run, check, status, handover, takeback, release)
	daemon.AddVersion(root)
	daemon.AddManPages(root)
	return root
}

// runDaemon runs vipwatch until SIGTERM or SIGINT; reload re-reads the
// config on SIGHUP.
func runDaemon(parent context.Context, cfg member.Config, reload func() (member.Config, error)) error {
	log := daemon.NewLogger(os.Stderr, cfg.Log, daemon.UnderJournald()).With("component", "vipwatch")
	if err := member.CheckPrivileges(); err != nil {
		return err
	}
	key, err := config.ReadSecret(cfg.SecretFile)
	if err != nil {
		return fmt.Errorf("secret_file: %w", err)
	}
	var token []byte
	if cfg.Admin.TokenFile != "" {
		if token, err = config.ReadSecret(cfg.Admin.TokenFile); err != nil {
			return fmt.Errorf("admin.token_file: %w", err)
		}
	}
	m, err := member.Open(cfg, key, log)
	if err != nil {
		return err
	}
	if err := m.Listen(); err != nil {
		return err
	}
	admin := daemon.NewAdmin(token)
	admin.Registry().MustRegister(daemon.BuildInfo("vipwatch"))
	if err := m.Register(admin.Registry()); err != nil {
		return err
	}
	admin.Handle("GET /v1/status", m.ServeStatus)
	admin.Handle("POST /v1/handover", m.ServeHandover)
	admin.Handle("POST /v1/takeback", m.ServeTakeback)
	if err := admin.Listen(cfg.Admin.Listen); err != nil {
		return err
	}
	notifier := daemon.NewNotifier(log)
	m.OnReady = func(ready bool) {
		admin.SetReady(ready)
		if ready {
			notifier.Status("serving")
		}
	}

	ctx, stop := daemon.SignalContext(parent)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return admin.Serve(gctx) })
	g.Go(func() error {
		daemon.HandleReloads(gctx, log, notifier, func(context.Context) error {
			next, err := reload()
			if err != nil {
				return err
			}
			k, err := config.ReadSecret(next.SecretFile)
			if err != nil {
				return fmt.Errorf("secret_file: %w", err)
			}
			return m.Reload(next, k)
		})
		return nil
	})
	g.Go(func() error { notifier.Watchdog(gctx, m.Alive); return nil })
	g.Go(func() error {
		// READY=1 once the socket is bound and the loop is about to
		// start; Run then cleans up before it does anything else.
		notifier.Ready("starting")
		err := m.Run(gctx)
		notifier.Stopping()
		if err != nil {
			return err
		}
		return context.Canceled // stop the admin listener and the rest
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		log.Info("stopped", "op", "stop")
		return nil
	}
	return err
}

// handedOver reports whether every VIP this node gives is held by the
// partner alone.
func handedOver(st member.Status) bool {
	for _, v := range st.VIPs {
		if slices.Contains(st.Gives, v.VIP) && (v.Holder == st.Node || v.Holder == "both" || v.Holder == "") {
			return false
		}
	}
	return true
}
