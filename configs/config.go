// Package configs owns adaptrec's configuration: the documented default file
// (adaptrec.yaml, embedded in the binary and the only source of defaults), the
// Config struct it decodes into, and Load, which layers a user file, ADAPTREC_*
// environment variables and command-line flags on top and rejects unknown
// keys and invalid values with an error naming the key. Each section checks
// its own values, in the file of its struct; the recommender.* values are
// checked by the model options they map onto (configs/wire), so configs
// names no model.
package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// DefaultYAML is configs/adaptrec.yaml: every key with its default.
//
//go:embed adaptrec.yaml
var DefaultYAML []byte

// EnvPrefix is the prefix of the environment variables Load reads.
const EnvPrefix = "ADAPTREC"

// Config is the whole configuration of the adaptrec binary.
type Config struct {
	Kafka       Kafka       `mapstructure:"kafka"`
	Topics      Topics      `mapstructure:"topics"`
	Batch       Batch       `mapstructure:"batch"`
	Validate    Validation  `mapstructure:"validate"`
	Dedupe      Dedupe      `mapstructure:"dedupe"`
	Session     Session     `mapstructure:"session"`
	Recommender Recommender `mapstructure:"recommender"`
	Sink        Sink        `mapstructure:"sink"`
	Worker      Worker      `mapstructure:"worker"`
	Embedded    Embedded    `mapstructure:"embedded"`
	Log         Log         `mapstructure:"log"`
	Tracing     Tracing     `mapstructure:"tracing"`
	Metrics     Metrics     `mapstructure:"metrics"`
	Sim         Sim         `mapstructure:"sim"`
	Snapshot    Snapshot    `mapstructure:"snapshot"`
}

// Default returns the configuration of the embedded default file.
func Default() Config {
	c, err := Load(LoadOptions{})
	if err != nil {
		// The embedded file is checked by the tests; failing here is a build defect.
		panic(fmt.Sprintf("configs: embedded adaptrec.yaml is invalid: %v", err))
	}
	return c
}

// LoadOptions says where Load finds the layers above the defaults.
type LoadOptions struct {
	// File is a YAML config file; empty means none.
	File string
	// Environ is the environment to read ADAPTREC_* variables from, as
	// os.Environ returns it; nil means none (tests stay hermetic).
	Environ []string
	// Flags maps config keys to flags; a flag overrides only if it was set.
	Flags map[string]*pflag.Flag
}

// Load builds the configuration from the defaults, the file, the environment
// and the flags, in that order of precedence, then validates it (Check:
// every section but recommender.*, which wire.Load checks as well).
func Load(opts LoadOptions) (Config, error) {
	v := viper.New()
	defaults := viper.New()
	defaults.SetConfigType("yaml")
	if err := defaults.ReadConfig(bytes.NewReader(DefaultYAML)); err != nil {
		return Config{}, fmt.Errorf("reading embedded defaults: %w", err)
	}
	known := map[string]bool{}
	for _, k := range defaults.AllKeys() {
		known[k] = true
		v.SetDefault(k, defaults.Get(k))
	}

	if opts.File != "" {
		raw, err := os.ReadFile(opts.File)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		fv := viper.New()
		fv.SetConfigType("yaml")
		if err := fv.ReadConfig(bytes.NewReader(raw)); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", opts.File, err)
		}
		if err := checkKeys(fv.AllKeys(), known); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", opts.File, err)
		}
		if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", opts.File, err)
		}
	}

	var unknown []string
	for _, kv := range opts.Environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix+"_") {
			continue
		}
		key, ok := envKey(name, known)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		v.Set(key, val)
	}
	for _, name := range unknown {
		// The variable kafka.sasl.password_env names may be ADAPTREC_*.
		if name != v.GetString("kafka.sasl.password_env") {
			return Config{}, fmt.Errorf("environment variable %s: unknown key (see configs/adaptrec.yaml)%s", name, passwordHint(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix+"_"), "_", "."))))
		}
	}

	for key, f := range opts.Flags {
		if !known[key] {
			return Config{}, fmt.Errorf("flag --%s is bound to unknown key %q", f.Name, key)
		}
		if f.Changed {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v.Set(key, sv.GetSlice())
			} else {
				v.Set(key, f.Value.String())
			}
		}
	}

	var c Config
	if err := decode(v.AllSettings(), &c); err != nil {
		return Config{}, err
	}
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// envKey maps ADAPTREC_BATCH_MAX_WAIT to batch.max_wait. Underscores are
// ambiguous (they both join levels and appear inside key names), so the
// variable is matched against the known keys rather than split blindly.
func envKey(name string, known map[string]bool) (string, bool) {
	want := strings.ToLower(strings.TrimPrefix(name, EnvPrefix+"_"))
	for k := range known {
		if strings.ReplaceAll(k, ".", "_") == want {
			return k, true
		}
	}
	return "", false
}

func checkKeys(keys []string, known map[string]bool) error {
	slices.Sort(keys)
	for _, k := range keys {
		if known[k] {
			continue
		}
		// A scalar where a section is expected shows up as the section's name.
		for kk := range known {
			if strings.HasPrefix(kk, k+".") {
				return fmt.Errorf("key %q must be a mapping of keys, not a value", k)
			}
		}
		return fmt.Errorf("unknown key %q (see configs/adaptrec.yaml)%s", k, passwordHint(k))
	}
	return nil
}

// passwordHint explains, for a key that looks like a password, where the
// password goes instead.
func passwordHint(key string) string {
	if key != "kafka.sasl.password" {
		return ""
	}
	return ": the password is read from the environment variable named by kafka.sasl.password_env or from kafka.sasl.password_file, never from the config"
}

func decode(settings map[string]any, c *Config) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           c,
		Metadata:         &md,
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			stringToList,
		),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(settings); err != nil {
		return fmt.Errorf("invalid config: %w", unwrapDecode(err))
	}
	return nil
}

// unwrapDecode rewrites mapstructure's messages into "key: problem" lines.
func unwrapDecode(err error) error {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "decoding failed due to the following error(s):\n\n", "")
	return errors.New(strings.TrimSpace(msg))
}

// Check checks every value that the types alone do not constrain, section
// by section; each error names its key. The recommender.* keys are checked
// by the model options they map onto (configs/wire), not here.
func (c Config) Check() error {
	var p problems
	c.Kafka.check(&p)
	c.Topics.check(&p)
	c.Batch.check(&p)
	c.Validate.check(&p)
	c.Dedupe.check(&p)
	c.Session.check(&p)
	c.Sink.check(&p)
	c.Worker.check(&p)
	c.Snapshot.check(&p, c.Topics.Feedback)
	c.Embedded.check(&p)
	c.Log.check(&p)
	c.Tracing.check(&p)
	c.Metrics.check(&p)
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("invalid config: %w", errors.Join(p...))
}

// problems collects what a section's check finds wrong, each error naming
// its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// positive adds an error for each key of m (in key order) whose value is
// not positive.
func positive[V int | time.Duration](p *problems, m map[string]V) {
	for _, k := range sortedKeys(m) {
		switch v := any(m[k]).(type) {
		case time.Duration:
			if v <= 0 {
				p.add(k, "must be a positive duration, got %v", v)
			}
		case int:
			if v <= 0 {
				p.add(k, "must be positive, got %d", v)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// stringToList splits a string (an environment variable) into the
// elements of a list key on commas, trimming spaces, whatever the
// elements' type: ADAPTREC_RECOMMENDER_DQN_HIDDEN="64,32" is [64 32].
// (mapstructure's StringToSliceHookFunc splits only into []string, and a
// []int key then took the whole string as one element it could not parse.)
func stringToList(f, t reflect.Type, data any) (any, error) {
	if f.Kind() != reflect.String || t.Kind() != reflect.Slice {
		return data, nil
	}
	s := strings.TrimSpace(reflect.ValueOf(data).String())
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts, nil
}
