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

// OtherEnv is implemented by a config whose daemon reads environment
// variables with its prefix that are not config keys (the client's
// APPNODE_TOKEN, say). Load reports every other variable with the
// prefix that names no key as an error, so a misspelt override
// (DNSLB_LISTNE) is never silently ignored.
type OtherEnv interface {
	OtherEnv() []string
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
	// source names where a key's value came from when it was not the
	// file: the environment variable or the flag, for error messages.
	source := map[string]string{}
	if opts.EnvPrefix != "" {
		env := opts.Environ
		if env == nil {
			env = os.Environ()
		}
		if err := fromEnv(v, env, opts.EnvPrefix, out, source); err != nil {
			return err
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
		source[key] = "--" + f.Name
	}
	if err := v.UnmarshalExact(out, decoderOptions); err != nil {
		return explain(err, reflect.TypeOf(out).Elem().String(), source)
	}
	return withSource(out.Validate(), source)
}

// fromEnv sets every key that has an environment variable in env, and
// refuses variables with the prefix that name no key.
func fromEnv(v *viper.Viper, env []string, prefix string, out Validator, source map[string]string) error {
	keyOf := map[string]string{}
	var names []string
	for _, key := range Keys(out) {
		name := EnvName(prefix, key)
		keyOf[name] = key
		names = append(names, name)
	}
	other := map[string]bool{}
	if o, ok := out.(OtherEnv); ok {
		for _, name := range o.OtherEnv() {
			other[name] = true
		}
	}
	var unknown []string
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, strings.ToUpper(prefix)+"_") {
			continue
		}
		key, isKey := keyOf[name]
		switch {
		case isKey:
			v.Set(key, val)
			source[key] = name
		case !other[name]:
			msg := name + ": no such setting"
			if near := nearest(name, names); near != "" {
				msg += " (did you mean " + near + "?)"
			}
			unknown = append(unknown, msg)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("environment: %s; every %s_ variable must name a config key (%s_ADMIN_LISTEN for admin.listen)",
			strings.Join(unknown, "; "), strings.ToUpper(prefix), strings.ToUpper(prefix))
	}
	return nil
}

// nearest returns the name in names closest to s, if it is a likely
// misspelling (at most two edits apart).
func nearest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counting a
// swap of two neighbouring letters as one edit.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// withSource adds to a *FieldError the environment variable or flag
// its key came from, so the message names what the operator typed.
func withSource(err error, source map[string]string) error {
	var fe *FieldError
	if err == nil || len(source) == 0 || !errors.As(err, &fe) || err.Error() != fe.Error() {
		return err
	}
	src := sourceOf(fe.Key, source)
	if src == "" {
		return err
	}
	out := *fe
	out.Source = src
	return &out
}

// sourceOf is where key (or the list or section it is part of) was set,
// or "" for the file.
func sourceOf(key string, source map[string]string) string {
	for k := key; k != ""; {
		if s, ok := source[k]; ok {
			return s
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return ""
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
		addressHook,
		mapstructure.TextUnmarshallerHookFunc(),
		listHook,
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

// listHook splits a string (an environment variable, a flag) on commas
// for a list of any type: VIPWATCH_HOME_VIPS=198.51.100.10/24,2001:db8::10/64.
func listHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || to.Kind() != reflect.Slice || to.Elem().Kind() == reflect.Uint8 {
		return data, nil
	}
	if strings.TrimSpace(s) == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// addressHook decodes IP addresses, prefixes and address:port pairs
// with errors in an operator's words: the value, what was expected
// with an example, and what is wrong with it, without the names of the
// Go functions that found it.
func addressHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok {
		return data, nil
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return data, nil // the zero value, as netip's UnmarshalText makes it: "is required" is Validate's to say
	}
	var err error
	switch to {
	case reflect.TypeFor[netip.Addr]():
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			return a, nil
		}
	case reflect.TypeFor[netip.Prefix]():
		var p netip.Prefix
		if p, err = netip.ParsePrefix(s); err == nil {
			return p, nil
		}
	case reflect.TypeFor[netip.AddrPort]():
		var ap netip.AddrPort
		if ap, err = netip.ParseAddrPort(s); err == nil {
			return ap, nil
		}
	default:
		return data, nil
	}
	msg := fmt.Sprintf("%q is not a valid %s", s, typeWord(to))
	if why := addressProblem(err); why != "" {
		msg += ": " + why
	}
	return nil, errors.New(msg)
}

// addressProblem is the part of a net/netip parse error that says what
// is wrong (`IPv4 field has value >255`), without the calls that led
// there (`netip.ParsePrefix("..."): ParseAddr("..."): `).
func addressProblem(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		msg = msg[i+3:]
	}
	switch msg {
	case "not an ip:port":
		return "" // says no more than the message itself
	case "no '/'":
		return "the /length is missing"
	}
	return msg
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
	// Source is the environment variable or flag the value came from
	// (DNSLB_UDP_SIZE, --admin-listen); empty for the file.
	Source string
}

func (e *FieldError) Error() string {
	key := e.Key
	if e.Source != "" {
		key = e.Source + " (" + e.Key + ")"
	}
	if e.Value == nil {
		return key + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %q %s", key, fmt.Sprint(e.Value), e.Msg)
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
	return explain(err, root, nil)
}

func explain(err error, root string, source map[string]string) error {
	var lines []string
	add := func(key, msg string) {
		switch src := sourceOf(key, source); {
		case key == "":
			lines = append(lines, msg)
		case src != "":
			lines = append(lines, src+" ("+key+"): "+msg)
		default:
			lines = append(lines, key+": "+msg)
		}
	}
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
				add(key, "unknown key")
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
		add(name, msg)
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
		return "IP address (like 198.51.100.10 or 2001:db8::10)"
	case reflect.TypeFor[netip.Prefix]():
		return "IP prefix (address/length, like 198.51.100.10/24 or 2001:db8::10/64)"
	case reflect.TypeFor[netip.AddrPort]():
		return "address:port (like 198.51.100.12:7201 or [2001:db8::12]:7201)"
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
