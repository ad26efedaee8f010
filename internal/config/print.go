package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Masked is printed in place of a value tagged `secret:"true"`.
const Masked = "********"

// YAML renders cfg as YAML under its mapstructure key names, the form
// check-config prints. Fields tagged `secret:"true"` are masked;
// durations print as Go durations and addresses in their text form.
func YAML(cfg any) (string, error) {
	b, err := yaml.Marshal(plain(reflect.ValueOf(cfg)))
	if err != nil {
		return "", fmt.Errorf("rendering config: %w", err)
	}
	return string(b), nil
}

// plain turns a config value into maps, slices and scalars that yaml
// renders in the same shape the config file uses.
func plain(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok && v.Kind() == reflect.Struct {
		b, err := m.MarshalText()
		if err != nil {
			return fmt.Sprint(v.Interface())
		}
		return string(b)
	}
	switch v.Kind() {
	case reflect.Struct:
		out := yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
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
			var val any = plain(v.Field(i))
			if f.Tag.Get("secret") == "true" && !v.Field(i).IsZero() {
				val = Masked
			}
			var kn, vn yaml.Node
			kn.SetString(name)
			if err := vn.Encode(val); err != nil {
				vn.SetString(fmt.Sprint(val))
			}
			out.Content = append(out.Content, &kn, &vn)
		}
		return &out
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		for _, k := range v.MapKeys() {
			out[fmt.Sprint(k.Interface())] = plain(v.MapIndex(k))
		}
		return out
	}
	return v.Interface()
}
