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
		env = append(env, EnvName(k)+"="+render(v))
	}
	sort.Strings(env)
	return env
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// render is a value as its environment variable holds it: a list
// comma-separated, as Load splits it.
func render(v any) string {
	switch l := v.(type) {
	case []string:
		return strings.Join(l, ",")
	case []any:
		parts := make([]string, len(l))
		for i, x := range l {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}
