# The conversation a session's events record, without what may differ from one run to another
# (ids, times, leases, spans, sandbox events, retried or cut-off model calls): the agent's
# messages and thinking in order, and each tool call with its result. Two runs of one scenario
# must give the same transcript however often their brains were killed. Input: an array of
# events, each {"type", "id", ...fields} (the API's rendering) or {"type","payload"} (orch-wake).
def fields: if has("payload") then .payload + {id: (.id // null)} else . end;
map({type} + fields) as $ev
| ($ev | map(select(.type == "agent.tool_result")) | map({key: .tool_use_id, value: {content, is_error: (.is_error // false)}}) | from_entries) as $results
| [$ev[] | select(.type == "agent.message" or .type == "agent.thinking" or .type == "agent.tool_use" or .type == "user.message")
   | if .type == "agent.tool_use" then {type, name, input, result: $results[.id]}
     elif .type == "agent.thinking" then {type, thinking}
     else {type, content} end]
