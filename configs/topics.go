package configs

import "strings"

// Topics names the topics the worker reads and writes.
type Topics struct {
	Feedback          string `mapstructure:"feedback"`
	Recommendations   string `mapstructure:"recommendations"`
	DLQ               string `mapstructure:"dlq"`
	Decisions         string `mapstructure:"decisions"`
	Create            bool   `mapstructure:"create"`
	Partitions        int    `mapstructure:"partitions"`
	ReplicationFactor int    `mapstructure:"replication_factor"`
}

// check validates topics.*.
func (t Topics) check(p *problems) {
	names := map[string]string{
		"topics.feedback": t.Feedback, "topics.recommendations": t.Recommendations,
		"topics.dlq": t.DLQ, "topics.decisions": t.Decisions,
	}
	nonEmpty(p, names)
	for _, k := range sortedKeys(names) {
		if name := names[k]; name != "" && !validTopic(name) {
			p.add(k, "%q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", name)
		}
	}
	if t.Feedback != "" && (t.Feedback == t.Recommendations || t.Feedback == t.DLQ || t.Feedback == t.Decisions) {
		p.add("topics.feedback", "must differ from the output topics")
	}
	positive(p, map[string]int{"topics.partitions": t.Partitions, "topics.replication_factor": t.ReplicationFactor})
}

// nonEmpty adds an error for each key of m (in key order) whose value is
// blank.
func nonEmpty(p *problems, m map[string]string) {
	for _, k := range sortedKeys(m) {
		if strings.TrimSpace(m[k]) == "" {
			p.add(k, "must not be empty")
		}
	}
}

func validTopic(s string) bool {
	if len(s) > 249 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
