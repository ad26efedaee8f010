// Package config loads a daemon's configuration: a YAML file, environment
// overrides with a per-daemon prefix, then command-line flags, decoded with
// viper's UnmarshalExact so that an unknown key is an error.
//
// Decode and validation errors name the key and the bad value, for example
//
//	zones[0].services[0].check.interval: "5" is not a duration
//
// Every daemon's config struct implements [Validator]; its Validate method
// fills defaults and checks values in one place.
package config
