// Command appnode is the feed service on an md5 ring: `appnode serve`
// runs a member, `check-config` validates a config, `status` and
// `reload` ask a running member, and `appnode user ...` is a
// command-line client.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ringfront/ringfront/appnode/cli"
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
	root.AddCommand(serveCmd(load), checkConfigCmd(load), cli.User(), cli.Proxy())
	root.AddCommand(adminCmds(&file, load)...)
	root.AddCommand(backupCmd(adminTarget(&file, load)), restoreCmd(load))
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
			n, err := node.Open(cfg, func() (node.Config, error) { return load(cmd) }, log)
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
	target := adminTarget(file, load)
	status := daemon.StatusCommand(target, "Show a running member's ring and store", cli.PrintStatus)
	return []*cobra.Command{status, daemon.ReloadCommand(target, 30*time.Second)}
}

// adminTarget finds the running member's admin API: --admin, else
// admin.listen from the config.
func adminTarget(file *string, load loader) daemon.AdminTarget {
	return daemon.AdminTarget{
		Program: "appnode", Default: node.DefaultAdmin, ConfigFile: func() string { return *file },
		Load: func(cmd *cobra.Command) (daemon.AdminConfig, error) {
			cfg, err := load(cmd)
			return cfg.Admin, err
		},
	}
}
