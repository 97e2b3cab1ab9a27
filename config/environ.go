package config

import (
	"fmt"
	"sort"
	"strings"
)

// Environ renders every effective value as a PROCQ_<SECTION>_<KEY>
// variable, sorted, so a spawned child sees exactly this configuration
// whatever its own config file says.
func (c *Config) Environ() []string {
	env := make([]string, 0, len(c.values))
	for k, v := range c.values {
		env = append(env, EnvName(k)+"="+fmt.Sprint(v))
	}
	sort.Strings(env)
	return env
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
