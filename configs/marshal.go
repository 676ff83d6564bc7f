package configs

import (
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"
)

// Marshal renders c as YAML with the keys of configs/adaptrec.yaml, so the
// output can be fed back with --config.
func Marshal(c Config) ([]byte, error) {
	return yaml.Marshal(toMap(reflect.ValueOf(c)))
}

func toMap(v reflect.Value) any {
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	if v.Kind() != reflect.Struct {
		return v.Interface()
	}
	m := map[string]any{}
	for i := range v.NumField() {
		m[v.Type().Field(i).Tag.Get("mapstructure")] = toMap(v.Field(i))
	}
	return m
}
