// Command vipwatch keeps a pair of machines' VIPs answering: each
// daemon holds its home VIPs, watches its partner with signed UDP
// heartbeats, and takes the partner's VIPs (netlink + gratuitous ARP)
// while the partner is down.
//
//	vipwatch run           run the daemon (SIGHUP or `vipwatch reload` re-reads the config)
//	vipwatch check-config  validate and print the effective config
//	vipwatch status        print the running daemon's view of the pair
//	vipwatch reload        ask the running daemon to re-read its config
//	vipwatch handover      give this node's home VIPs to the partner, no request lost
//	vipwatch takeback      take them back
//	vipwatch release-all   remove every address vipwatch put on the interface
package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/vipwatch/member"
)

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
	root.PersistentFlags().StringVarP(&file, "config", "c", "/etc/ringfront/vipwatch.yaml", "config file (YAML)")
	load := func(flags *pflag.FlagSet) (member.Config, error) {
		var cfg member.Config
		fl := map[string]*pflag.Flag{}
		if f := flags.Lookup("admin-listen"); f != nil {
			fl["admin.listen"] = f
		}
		err := config.Load(config.Options{File: file, EnvPrefix: "VIPWATCH", Flags: fl}, &cfg)
		return cfg, err
	}
	target := daemon.AdminTarget{
		Program: "vipwatch", Default: member.DefaultAdminListen, ConfigFile: func() string { return file },
		Load: func(cmd *cobra.Command) (daemon.AdminConfig, error) {
			cfg, err := load(cmd.Flags())
			return cfg.Admin, err
		},
	}

	run := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon (SIGHUP re-reads the config)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return err
			}
			log := daemon.NewLogger(os.Stderr, cfg.Log, daemon.UnderJournald()).With("component", "vipwatch")
			d, err := member.OpenDaemon(cfg, func() (member.Config, error) { return load(cmd.Flags()) }, log)
			if err != nil {
				return err
			}
			ctx, stop := daemon.SignalContext(cmd.Context())
			defer stop()
			return d.Run(ctx)
		},
	}
	run.Flags().String("admin-listen", "", "admin listener address (overrides admin.listen)")

	check := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the config (the secret and token files included) and print it with defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return err
			}
			out, err := config.YAML(&cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		},
	}

	status := daemon.StatusCommand(target, "Print the running daemon's view: who holds which VIP, the partner, counters",
		func(w io.Writer, st member.Status) { fmt.Fprint(w, member.FormatStatus(st)) })

	var handoverVIPs []string
	handover := member.MoveCommand(target, "handover", "Give this node's home VIPs (or those named with --vip) to the partner without losing a request",
		"handover asks the running daemon to give its home VIPs to the partner: the partner\n"+
			"claims and announces them, then this node releases them. They stay with the partner\n"+
			"until `vipwatch takeback` (or until the partner stops). It waits until the partner\n"+
			"holds them (--wait) and prints the status.",
		func() string { return "/v1/handover?" + url.Values{"vip": handoverVIPs}.Encode() }, member.HandedOver)
	handover.Flags().StringArrayVar(&handoverVIPs, "vip", nil, "home VIP to hand over (address or prefix; repeatable; default: all)")
	takeback := member.MoveCommand(target, "takeback", "Take the home VIPs back from the partner after a handover, without losing a request", "",
		func() string { return "/v1/takeback" }, member.TakenBack)

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
			return member.ReleaseAll(cmd.OutOrStdout(), cmd.ErrOrStderr(), ifname, runtimeDir, func() (member.Config, error) { return load(cmd.Flags()) })
		},
	}
	release.Flags().StringVarP(&ifname, "interface", "i", "", "interface to clean (default: the config's interface)")
	release.Flags().StringVar(&runtimeDir, "runtime-dir", "", "directory with vipwatch's record of its IPv6 addresses (default: the config's runtime_dir, else "+member.DefaultRuntimeDir+")")

	root.AddCommand(run, check, status, daemon.ReloadCommand(target, 10*time.Second), handover, takeback, release)
	daemon.AddVersion(root)
	daemon.AddManPages(root)
	return root
}
