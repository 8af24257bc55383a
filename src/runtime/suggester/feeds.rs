//! The inbox and calendar reads' answers, turned into the entries a suggestion run
//! is given.

/// Messages as the inbox read returns them (`{"messages":[{from,subject,received}]}`).
pub(super) fn inbox_entries(data: &serde_json::Value) -> Vec<crate::agent::suggest::InboxEntry> {
    data.get("messages")
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .filter_map(|m| {
                    Some(crate::agent::suggest::InboxEntry {
                        from: m.get("from")?.as_str()?.to_string(),
                        subject: m.get("subject")?.as_str().unwrap_or_default().to_string(),
                        received: m.get("received")?.as_i64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Events as the calendar read returns them (`{"events":[{summary,start,end,attendees}]}`).
pub(super) fn calendar_entries(
    data: &serde_json::Value,
) -> Vec<crate::agent::suggest::CalendarEntry> {
    let ms = |v: &serde_json::Value| {
        v.get("dateTime")
            .and_then(|t| t.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    };
    data.get("events")
        .and_then(|e| e.as_array())
        .map(|events| {
            events
                .iter()
                .filter_map(|e| {
                    Some(crate::agent::suggest::CalendarEntry {
                        title: e.get("summary")?.as_str().unwrap_or_default().to_string(),
                        start: ms(e.get("start")?)?,
                        end: ms(e.get("end")?)?,
                        attendees: e
                            .get("attendees")
                            .and_then(|a| a.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.get("email")?.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
