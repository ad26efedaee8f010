package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfront/ringfront/internal/config"
)

// AdminTarget tells the CLI's admin commands (status, reload, and a
// daemon's own, such as dnslb drain) where a daemon's admin API is when
// --admin or --token-file is not given: the admin section of its config.
type AdminTarget struct {
	// Program names the daemon in errors ("is dnslb running?").
	Program string
	// Default is the daemon's default admin address, used when neither
	// --admin nor a config file gives one.
	Default string
	// ConfigFile returns the config file's path. When that file does
	// not exist, the defaults apply (Default, no token).
	ConfigFile func() string
	// Load reads the daemon's config (validated, token read) and
	// returns its admin section.
	Load func(cmd *cobra.Command) (AdminConfig, error)
}

// AdminClient is one admin command's view of a running daemon: the
// flags --admin (old spelling --admin-listen, hidden) and --token-file,
// resolved against the daemon's config.
type AdminClient struct {
	target    AdminTarget
	cmd       *cobra.Command
	addr      string
	tokenFile string
}

// NewAdminClient adds --admin, --token-file and the hidden old spelling
// --admin-listen to cmd, and returns the client that reads them.
func NewAdminClient(cmd *cobra.Command, t AdminTarget) *AdminClient {
	c := &AdminClient{target: t, cmd: cmd}
	fs := cmd.Flags()
	fs.StringVar(&c.addr, "admin", "", "admin API address of the running "+t.Program+" (default: admin.listen from the config, else "+t.Default+")")
	fs.StringVar(&c.addr, "admin-listen", "", "old spelling of --admin")
	fs.MarkHidden("admin-listen")
	fs.StringVar(&c.tokenFile, "token-file", "", "admin token file (default: admin.token_file from the config)")
	return c
}

// Resolve returns the admin address and token: the flags' where given,
// else the config's, else the defaults.
func (c *AdminClient) Resolve() (addr string, token []byte, err error) {
	addr = c.addr
	if addr != "" {
		if why := checkHostPort(addr); why != "" {
			return "", nil, config.Errorf("--admin", addr, "%s", why)
		}
	}
	if c.tokenFile != "" {
		if token, err = config.Secret("--token-file", c.tokenFile); err != nil {
			return "", nil, err
		}
	}
	if addr != "" && c.tokenFile != "" {
		return addr, token, nil
	}
	file := c.target.ConfigFile()
	if _, statErr := os.Stat(file); errors.Is(statErr, os.ErrNotExist) {
		if addr == "" {
			addr = c.target.Default
		}
		return addr, token, nil
	}
	ac, err := c.target.Load(c.cmd)
	if err != nil {
		return "", nil, fmt.Errorf("reading the admin address and token from %s (or give --admin and --token-file): %w", file, err)
	}
	if addr == "" {
		addr = ac.Listen
	}
	if c.tokenFile == "" {
		token = ac.Token
	}
	return addr, token, nil
}

// Call sends one request to the daemon's admin API and decodes its
// JSON answer into out (if not nil), within timeout.
func (c *AdminClient) Call(ctx context.Context, method, path string, timeout time.Duration, out any) error {
	addr, token, err := c.Resolve()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := AdminRequest(ctx, method, addr, token, path, out); err != nil {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer from the admin API at %s (is %s running there?): %w", addr, c.target.Program, err)
		}
		return err
	}
	return nil
}

// StatusCommand returns the `status` command: GET /v1/status, printed
// by print, or with --json as the admin API's JSON (indented), the same
// for every daemon.
func StatusCommand[T any](t AdminTarget, short string, print func(io.Writer, T)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{Use: "status", Short: short, Args: cobra.NoArgs}
	c := NewAdminClient(cmd, t)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON answer instead of a table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var raw json.RawMessage
		if err := c.Call(cmd.Context(), "GET", "/v1/status", 5*time.Second, &raw); err != nil {
			return err
		}
		if asJSON {
			return writeIndented(cmd.OutOrStdout(), raw)
		}
		var st T
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("decoding the status answer: %w", err)
		}
		print(cmd.OutOrStdout(), st)
		return nil
	}
	return cmd
}

// ReloadCommand returns the `reload` command: POST /v1/reload, which
// re-reads the config as SIGHUP does but answers with the error when
// the new config is refused. With --json it prints the answer.
func ReloadCommand(t AdminTarget, timeout time.Duration) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Ask the running " + t.Program + " to re-read its config (like SIGHUP, but reports errors)",
		Args:  cobra.NoArgs,
	}
	c := NewAdminClient(cmd, t)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON answer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var raw json.RawMessage
		if err := c.Call(cmd.Context(), "POST", "/v1/reload", timeout, &raw); err != nil {
			return err
		}
		if asJSON {
			return writeIndented(cmd.OutOrStdout(), raw)
		}
		fmt.Fprintln(cmd.OutOrStdout(), "reloaded")
		return nil
	}
	return cmd
}

func writeIndented(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("the admin API's answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// checkHostPort says what is wrong with a host:port address, or "".
func checkHostPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port (like 127.0.0.1:9081)"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "has no valid port (0 to 65535)"
	}
	return ""
}

// Operator is who runs the command, as user@host (sudo's caller rather
// than root): what drains and handovers record.
func Operator() string {
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
