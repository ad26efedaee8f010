// Command vipwatch keeps a pair of machines' VIPs answering: each
// daemon holds its home VIPs, watches its partner with signed UDP
// heartbeats, and takes the partner's VIPs (netlink + gratuitous ARP)
// while the partner is down.
//
//	vipwatch run           run the daemon
//	vipwatch check-config  validate and print the effective config
//	vipwatch status        print the running daemon's view of the pair
//	vipwatch release-all   remove every address vipwatch put on the interface
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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

	var ifname string
	release := &cobra.Command{
		Use:   "release-all",
		Short: "Remove every address vipwatch put on the interface (systemd runs this as ExecStopPost)",
		Long: "release-all removes every address carrying vipwatch's label from the interface, so a\n" +
			"daemon that crashed or was killed leaves no VIP behind. With --interface it needs\n" +
			"no config file, so it works even when the config is broken.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ifname == "" {
				cfg, err := load(cmd.Flags())
				if err != nil {
					return fmt.Errorf("%w (or name the interface with --interface)", err)
				}
				ifname = cfg.Interface
			}
			if err := member.CheckPrivileges(); err != nil {
				return err
			}
			ifc, err := iface.Open(ifname)
			if err != nil {
				return err
			}
			removed, err := member.Cleanup(ifc)
			for _, p := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %v from %s\n", p, ifname)
			}
			if err != nil {
				return err
			}
			if len(removed) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no vipwatch addresses on %s\n", ifname)
			}
			return nil
		},
	}
	release.Flags().StringVarP(&ifname, "interface", "i", "", "interface to clean (default: the config's interface)")

	root.AddCommand(run, check, status, release)
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
	if err := m.Register(admin.Registry()); err != nil {
		return err
	}
	admin.Handle("GET /v1/status", m.ServeStatus)
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
