# Sourced by the demo scripts: follow_alerts API TOKEN prints one line per alert raised or
# updated by the rules, from the API's live alert stream (reviews are left out).
follow_alerts() {
  curl -sN -H "Authorization: Bearer $2" -H "X-Purpose: demo console" "$1/v1/alerts/stream" |
    while IFS= read -r line; do
      case "$line" in
        event:*) kind="${line#event:}"; kind="${kind# }" ;;
        data:*)
          case "${kind:-}" in reviewed | caught_up) continue ;; esac
          echo "${line#data:}" | jq -r --arg kind "${kind:-}" '
            "  \($kind | (. + "       ")[0:7]) \(.start)  \(.type)\(if .code then " " + .code else "" end)  person \(.person)  \(if .end then "ended " + .end else "open" end)"' 2>/dev/null ;;
      esac
    done
}
