package daemon

import (
	"io"
	"log/slog"
	"strings"

	"github.com/ringfront/ringfront/internal/config"
)

// LogConfig is the `log:` section of every daemon's config.
type LogConfig struct {
	// Format is text (default; journald adds the time) or json.
	Format string `mapstructure:"format"`
	// Level is debug, info (default), warn or error.
	Level string `mapstructure:"level"`
}

// Validate fills defaults and checks the values.
func (c *LogConfig) Validate() error {
	if c.Format == "" {
		c.Format = "text"
	}
	if c.Level == "" {
		c.Level = "info"
	}
	if c.Format != "text" && c.Format != "json" {
		return config.Errorf("format", c.Format, "is not a log format (want text or json)")
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		return config.Errorf("level", c.Level, "is not a log level (want debug, info, warn or error)")
	}
	return nil
}

// NewLogger returns a logger writing to w in the configured format.
// Text output leaves out the time when journald is the reader, since
// journald stamps every line itself.
func NewLogger(w io.Writer, c LogConfig, journald bool) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated
	opts := &slog.HandlerOptions{Level: lvl}
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	if journald {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
