package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Validator is implemented by every daemon's config struct. Validate fills
// defaults and reports the first bad value as a *FieldError.
type Validator interface {
	Validate() error
}

// Options says where a config comes from.
type Options struct {
	// File is the YAML file to read; empty means no file.
	File string
	// EnvPrefix is the environment prefix, such as "DNSLB": the key
	// admin.listen is then overridden by DNSLB_ADMIN_LISTEN.
	EnvPrefix string
	// Flags maps config keys to command-line flags; a flag overrides its
	// key only when it was set on the command line.
	Flags map[string]*pflag.Flag
	// Environ is the environment to read overrides from; nil means
	// os.Environ(). Tests pass their own.
	Environ []string
}

// Load reads the configuration described by opts into out, then calls
// out.Validate. out must be a pointer to a struct with mapstructure tags.
func Load(opts Options, out Validator) error {
	v := viper.New()
	v.SetConfigType("yaml")
	if opts.File != "" {
		f, err := os.Open(opts.File)
		if err != nil {
			return fmt.Errorf("reading config: %w", err)
		}
		err = v.ReadConfig(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("parsing config %s: %w", opts.File, err)
		}
	}
	if opts.EnvPrefix != "" {
		env := opts.Environ
		if env == nil {
			env = os.Environ()
		}
		vals := make(map[string]string, len(env))
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok {
				vals[k] = val
			}
		}
		for _, key := range Keys(out) {
			name := EnvName(opts.EnvPrefix, key)
			if val, ok := vals[name]; ok {
				v.Set(key, val)
			}
		}
	}
	// Flags come last: viper's Set outranks everything else.
	for key, f := range opts.Flags {
		if f == nil || !f.Changed {
			continue
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v.Set(key, sv.GetSlice())
		} else {
			v.Set(key, f.Value.String())
		}
	}
	if err := v.UnmarshalExact(out, decoderOptions); err != nil {
		return Explain(err, reflect.TypeOf(out).Elem().String())
	}
	return out.Validate()
}

// EnvName is the environment variable that overrides key for a daemon
// with the given prefix: EnvName("DNSLB", "admin.listen") is
// "DNSLB_ADMIN_LISTEN".
func EnvName(prefix, key string) string {
	return strings.ToUpper(prefix + "_" + strings.ReplaceAll(key, ".", "_"))
}

func decoderOptions(c *mapstructure.DecoderConfig) {
	c.DecodeHook = mapstructure.ComposeDecodeHookFunc(
		durationHook,
		unsignedHook,
		mapstructure.TextUnmarshallerHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)
	c.WeaklyTypedInput = true
	c.ErrorUnused = true
	c.ZeroFields = true
}

var durationType = reflect.TypeFor[time.Duration]()

// durationHook decodes Go duration strings and refuses bare numbers, which
// weak typing would otherwise read as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (write it like 250ms or 5s)", d)
		}
		return dur, nil
	case time.Duration:
		return d, nil
	case int, int64, float64, uint64:
		if reflect.ValueOf(d).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("\"%v\" is not a duration (write it like 250ms or 5s)", d)
	}
	return data, nil
}

// unsignedHook refuses negative numbers for unsigned fields, which weak
// typing would otherwise wrap around.
func unsignedHook(from, to reflect.Type, data any) (any, error) {
	switch to.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return data, nil
	}
	rv := reflect.ValueOf(data)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if rv.Int() < 0 {
			return nil, fmt.Errorf("\"%v\" must not be negative", data)
		}
	case reflect.Float32, reflect.Float64:
		if rv.Float() < 0 {
			return nil, fmt.Errorf("\"%v\" must not be negative", data)
		}
	}
	return data, nil
}

// FieldError is a bad value at a config key.
type FieldError struct {
	Key   string // such as zones[0].services[1].ttl
	Value any    // the bad value, or nil when the key is missing
	Msg   string // what is wrong with it
}

func (e *FieldError) Error() string {
	if e.Value == nil {
		return e.Key + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %q %s", e.Key, fmt.Sprint(e.Value), e.Msg)
}

// Errorf returns a *FieldError for key and value.
func Errorf(key string, value any, format string, args ...any) error {
	return &FieldError{Key: key, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// Missing returns a *FieldError for a required key that has no value.
func Missing(key string) error {
	return &FieldError{Key: key, Msg: "is required"}
}

// Join prefixes the key of a *FieldError with prefix, so a nested
// Validate can report its keys relative to itself:
// Join("zones[0]", err) turns "ttl: ..." into "zones[0].ttl: ...".
func Join(prefix string, err error) error {
	var fe *FieldError
	if err == nil || !errors.As(err, &fe) {
		return err
	}
	out := *fe
	if strings.HasPrefix(out.Key, "[") {
		out.Key = prefix + out.Key
	} else {
		out.Key = prefix + "." + out.Key
	}
	return &out
}

// Explain rewrites a mapstructure decode error as one line per problem,
// each starting with the key it concerns. root is the Go type name that
// mapstructure uses for the top level.
func Explain(err error, root string) error {
	var lines []string
	var walk func(error, string)
	walk = func(e error, name string) {
		var de *mapstructure.DecodeError
		switch {
		case errors.As(e, &de) && de == e:
			n := de.Name()
			if n == root {
				n = ""
			}
			walk(de.Unwrap(), n)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, sub := range j.Unwrap() {
				walk(sub, name)
			}
			return
		}
		if w := errors.Unwrap(e); w != nil && strings.HasPrefix(e.Error(), "decoding failed") {
			walk(w, name)
			return
		}
		msg := e.Error()
		if rest, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			for _, k := range strings.Split(rest, ", ") {
				key := k
				if name != "" {
					key = name + "." + k
				}
				lines = append(lines, key+": unknown key")
			}
			return
		}
		var pe *mapstructure.ParseError
		var ue *mapstructure.UnconvertibleTypeError
		switch {
		case errors.As(e, &pe):
			msg = fmt.Sprintf("%q is not a valid %s", fmt.Sprint(pe.Value), typeWord(pe.Expected.Type()))
		case errors.As(e, &ue):
			msg = fmt.Sprintf("%q is not a valid %s", fmt.Sprint(ue.Value), typeWord(ue.Expected.Type()))
		}
		if name == "" {
			lines = append(lines, msg)
		} else {
			lines = append(lines, name+": "+msg)
		}
	}
	walk(err, "")
	sort.Strings(lines)
	if len(lines) == 0 {
		return err
	}
	return fmt.Errorf("config: %s", strings.Join(lines, "; "))
}

func typeWord(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[netip.Addr]():
		return "IP address"
	case reflect.TypeFor[netip.Prefix]():
		return "IP prefix (address/length)"
	case reflect.TypeFor[netip.AddrPort]():
		return "address:port"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.Slice:
		return "list"
	case reflect.Map, reflect.Struct:
		return "section"
	}
	return t.String()
}

// Keys lists the leaf keys of a config struct, as viper names them
// (lower case, dot separated). Slices of structs are leaves: they are
// overridden whole, not per element.
func Keys(cfg any) []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem() // an optional section: its keys can still be set
			}
			if ft.Kind() == reflect.Struct && !isScalarStruct(ft) {
				walk(ft, key)
				continue
			}
			keys = append(keys, key)
		}
	}
	walk(reflect.TypeOf(cfg), "")
	return keys
}

func isScalarStruct(t reflect.Type) bool {
	switch t {
	case reflect.TypeFor[netip.Addr](), reflect.TypeFor[netip.Prefix](), reflect.TypeFor[netip.AddrPort](), reflect.TypeFor[time.Time]():
		return true
	}
	return false
}
