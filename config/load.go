package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// DefaultPath is the config file read when --config is not given.
const DefaultPath = "config.yaml"

// EnvPrefix prefixes the environment variables that override config keys:
// PROCQ_CONSUMERS_COUNT overrides consumers.count.
const EnvPrefix = "PROCQ"

// Options says where Load finds its values.
type Options struct {
	// Path is the config file. Defaults to DefaultPath, which may be missing;
	// a Path given explicitly must exist.
	Path string
	// Flags maps a flag to the key it overrides, e.g. "consumers" ->
	// "consumers.count". Only flags the user set override.
	Flags map[*pflag.Flag]string
}

// Load reads the configuration: defaults, then the config file, then the
// environment, then flags. Every error is an *Error naming the key and the
// source of the bad value.
func Load(opts Options) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	if err := checkEnv(os.Environ()); err != nil {
		return nil, err
	}
	file, err := readFile(v, opts.Path)
	if err != nil {
		return nil, err
	}
	src := sources{v: v, file: file, flags: opts.Flags}
	for f, key := range opts.Flags {
		if err := v.BindPFlag(key, f); err != nil {
			return nil, &Error{Source: "flag --" + f.Name, Key: key, Err: err}
		}
	}
	if err := checkUnknown(v, file); err != nil {
		return nil, err
	}
	var c Config
	if err := v.Unmarshal(&c, viper.DecodeHook(decodeHooks)); err != nil {
		var de *mapstructure.DecodeError
		if errors.As(err, &de) {
			return nil, &Error{Source: src.of(de.Name()), Key: de.Name(), Err: errors.Unwrap(de)}
		}
		return nil, &Error{Source: src.of(""), Err: err}
	}
	c.File = file
	c.normalize()
	c.src = src
	c.values = make(map[string]any, len(defaults))
	for k := range defaults {
		c.values[k] = v.Get(k)
	}
	c.derive()
	if err := c.validate(); err != nil {
		var ve *Error
		if errors.As(err, &ve) {
			ve.Source = src.of(ve.Key)
		}
		return nil, err
	}
	return &c, nil
}

// decodeHooks are viper's default hooks plus one that joins a YAML list
// into a comma-separated string (broker.url).
var decodeHooks = mapstructure.ComposeDecodeHookFunc(
	listToString,
	mapstructure.StringToTimeDurationHookFunc(),
	mapstructure.StringToSliceHookFunc(","),
)

func listToString(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.String || from.Kind() != reflect.Slice {
		return data, nil
	}
	return render(data), nil
}

// normalize trims the items of comma lists, as a user writes "a, b".
func (c *Config) normalize() {
	c.Broker.URL = strings.Join(trimAll(strings.Split(c.Broker.URL, ",")), ",")
	c.Broker.Cluster.Routes = trimAll(c.Broker.Cluster.Routes)
}

func trimAll(items []string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// derive sets the keys whose default depends on others, unless the user
// set them: broker.sync_always is true on a node of a cluster, whose
// replicated streams would otherwise lose acknowledged messages to an OS
// crash or power loss of a majority of nodes within the 2-minute fsync
// interval (RELIABILITY.md, "fsync: broker.sync_always").
func (c *Config) derive() {
	if !c.src.set("broker.sync_always") && c.Broker.Cluster.Name != "" {
		c.Broker.SyncAlways = true
		c.values["broker.sync_always"] = true
	}
}

// ErrorFor is an *Error for key, naming where its value came from (a flag,
// the environment, the file or the defaults): for a bad value that only
// shows once it is used, such as a replica count larger than the cluster.
func (c *Config) ErrorFor(key string, err error) *Error {
	return &Error{Source: c.src.of(key), Key: key, Err: err}
}

// readFile reads the config file into v and returns its path, or "" when the
// default file does not exist.
func readFile(v *viper.Viper, path string) (string, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPath
	}
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	err := v.ReadInConfig()
	switch {
	case err == nil:
		return path, nil
	case !explicit && errors.Is(err, fs.ErrNotExist):
		return "", nil
	default:
		return "", &Error{Source: path, Err: err}
	}
}

// checkUnknown rejects a key in the file that procq does not know, such as a
// typo (consumer: for consumers:).
func checkUnknown(v *viper.Viper, file string) error {
	if file == "" {
		return nil
	}
	var unknown []string
	for _, k := range v.AllKeys() {
		if _, ok := defaults[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return &Error{Source: file, Key: unknown[0], Err: fmt.Errorf("unknown key (known sections: broker, queue, consumers, pool, compare, pipe, log, metrics)")}
}

// EnvCPUProfile is the one PROCQ_ variable that is not a configuration
// key: a file every procq executable writes its CPU profile to
// (internal/cli).
const EnvCPUProfile = EnvPrefix + "_CPU_PROFILE"

// checkEnv rejects a PROCQ_ variable that names no key, such as a typo
// (PROCQ_CONSUMERS_COUNTT), as checkUnknown rejects one in the file.
func checkEnv(environ []string) error {
	known := make(map[string]bool, len(defaults)+1)
	for k := range defaults {
		known[EnvName(k)] = true
	}
	known[EnvCPUProfile] = true
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") && !known[name] {
			return &Error{Source: "environment " + name, Err: fmt.Errorf("names no configuration key (%s_<SECTION>_<KEY>, e.g. %s)", EnvPrefix, EnvName("consumers.count"))}
		}
	}
	return nil
}

// sources tells where the value of a key came from, for error messages.
type sources struct {
	v     *viper.Viper
	file  string
	flags map[*pflag.Flag]string
}

// set tells whether the user set key: by a flag, in the environment or in
// the file.
func (s sources) set(key string) bool {
	for f, k := range s.flags {
		if k == key && f.Changed {
			return true
		}
	}
	if _, ok := os.LookupEnv(EnvName(key)); ok {
		return true
	}
	return s.file != "" && s.v.InConfig(key)
}

func (s sources) of(key string) string {
	for f, k := range s.flags {
		if k == key && f.Changed {
			return "flag --" + f.Name
		}
	}
	env := EnvName(key)
	if _, ok := os.LookupEnv(env); ok && key != "" {
		return "environment " + env
	}
	if s.file != "" {
		return s.file
	}
	return "defaults"
}
