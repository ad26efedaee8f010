package daemon

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/spf13/cobra"
)

// Version is this build's version: the one `make build` stamps from
// `git describe` (-X github.com/prometheus/common/version.Version=...,
// so the build_info metric carries it too), else the module version
// the go command recorded (`go install ...@v1.2.3`, or a pseudo-version
// from the checkout's commit), else "devel".
func Version() string {
	if version.Version != "" {
		return version.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// VersionLine is what `--version` and the version command print, such
// as "dnslb v0.3.0-12-gabc1234 (revision abc1234..., go1.26.8 linux/amd64)".
func VersionLine(program string) string {
	return fmt.Sprintf("%s %s (revision %s, %s %s/%s)", program, Version(), version.GetRevision(),
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// BuildInfo returns the gauge <program>_build_info, always 1, labelled
// with the version, revision, branch, Go version and platform
// (client_golang's version collector): a dashboard or alert tells which
// build each instance runs.
func BuildInfo(program string) prometheus.Collector {
	return versioncollector.NewCollector(program,
		versioncollector.WithExtraConstLabels(prometheus.Labels{"version": Version()}))
}

// AddVersion gives a daemon's root command a --version flag and a
// version subcommand, both printing VersionLine.
func AddVersion(root *cobra.Command) {
	root.Version = Version()
	root.SetVersionTemplate(VersionLine(root.Name()) + "\n")
	root.InitDefaultVersionFlag() // now, so the man page lists it
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version and exit",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), VersionLine(root.Name()))
		},
	})
}
