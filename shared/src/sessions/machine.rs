//! The session state machine (SPEC-wave2 §1.3) as data: which states each event may start from,
//! where it leads, and which agent command goes with it. The database layer turns each legal step
//! into one guarded `UPDATE … WHERE state IN (<from>)`; these tables are its only source.

use crate::error::ApiError;

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Pending,
    Running,
    Hibernating,
    Hibernated,
    Waking,
    Terminating,
    Terminated,
    Failed,
}

pub const ALL_STATES: [State; 8] = [
    State::Pending,
    State::Running,
    State::Hibernating,
    State::Hibernated,
    State::Waking,
    State::Terminating,
    State::Terminated,
    State::Failed,
];

/// The states that hold quota (the reservation model: released at `terminating`).
pub const COUNTED: [State; 5] = [
    State::Pending,
    State::Running,
    State::Hibernating,
    State::Hibernated,
    State::Waking,
];

/// `COUNTED` as an SQL list.
pub const COUNTED_SQL: &str = "('pending','running','hibernating','hibernated','waking')";

/// Not yet ended: every state but `terminated` and `failed`.
pub const LIVE_SQL: &str =
    "('pending','running','hibernating','hibernated','waking','terminating')";

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Hibernating => "hibernating",
            State::Hibernated => "hibernated",
            State::Waking => "waking",
            State::Terminating => "terminating",
            State::Terminated => "terminated",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        ALL_STATES.into_iter().find(|state| state.as_str() == s)
    }

    /// `terminated` or `failed`: nothing moves it any more (but a `DELETE` of a failed one).
    pub fn is_final(self) -> bool {
        matches!(self, State::Terminated | State::Failed)
    }

    pub fn is_counted(self) -> bool {
        COUNTED.contains(&self)
    }
}

/// An agent command's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Hibernate,
    Wake,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start_session",
            Action::Stop => "stop_session",
            Action::Hibernate => "hibernate_session",
            Action::Wake => "wake_session",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [Action::Start, Action::Stop, Action::Hibernate, Action::Wake]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// What a user asks of a session (hibernate/wake routes, `PATCH {state}`, `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEvent {
    Hibernate,
    Wake,
    Terminate,
}

/// A legal user step: the guard, the target and the command enqueued with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub from: &'static [State],
    pub to: State,
    pub command: Option<Action>,
}

const HIBERNATE: Step = Step {
    from: &[State::Running],
    to: State::Hibernating,
    command: Some(Action::Hibernate),
};
const WAKE: Step = Step {
    from: &[State::Hibernated],
    to: State::Waking,
    command: Some(Action::Wake),
};
/// The ordinary end of a live session; the special cases (a never-delivered start, a failed
/// session, an agent that is gone, a repeated DELETE) are decided by the database layer.
const TERMINATE: Step = Step {
    from: &[
        State::Pending,
        State::Running,
        State::Hibernating,
        State::Hibernated,
        State::Waking,
    ],
    to: State::Terminating,
    command: Some(Action::Stop),
};

/// The step `event` takes from `from`, or 409 `invalid_state` in StreamSpace's wording.
/// `Terminate` from `terminating` (idempotent) and from `failed` (straight to `terminated`) are
/// legal here and handled by the caller; only `terminated` refuses it.
pub fn user_step(event: UserEvent, from: State) -> Result<Step, ApiError> {
    let step = match event {
        UserEvent::Hibernate => HIBERNATE,
        UserEvent::Wake => WAKE,
        UserEvent::Terminate => TERMINATE,
    };
    let ok = step.from.contains(&from)
        || (event == UserEvent::Terminate && matches!(from, State::Terminating | State::Failed));
    if ok {
        Ok(step)
    } else {
        Err(invalid_state(event, from))
    }
}

/// 409 `invalid_state`: "session must be running to hibernate (currently: pending)".
pub fn invalid_state(event: UserEvent, current: State) -> ApiError {
    let message = match event {
        UserEvent::Hibernate => format!(
            "session must be running to hibernate (currently: {})",
            current.as_str()
        ),
        UserEvent::Wake => format!(
            "session must be hibernated to wake (currently: {})",
            current.as_str()
        ),
        UserEvent::Terminate => format!("session is already {}", current.as_str()),
    };
    ApiError::conflict("invalid_state", message)
}

/// How a finished command moves its session: (guard, target). `None`: the session stays (a
/// failed stop stays `terminating`; the sweep re-sends it).
pub fn on_command_finished(action: Action, succeeded: bool) -> Option<(State, State)> {
    match (action, succeeded) {
        (Action::Start, true) => Some((State::Pending, State::Running)),
        (Action::Start, false) => Some((State::Pending, State::Failed)),
        (Action::Hibernate, true) => Some((State::Hibernating, State::Hibernated)),
        (Action::Hibernate, false) => Some((State::Hibernating, State::Running)),
        (Action::Wake, true) => Some((State::Waking, State::Running)),
        (Action::Wake, false) => Some((State::Waking, State::Hibernated)),
        (Action::Stop, true) => Some((State::Terminating, State::Terminated)),
        (Action::Stop, false) => None,
    }
}

/// May an agent report `to` for a session in `from`
/// (`POST /agents/{id}/sessions/{session_id}/status`)? Same-state reports are allowed (they
/// refresh the URL and metadata).
pub fn agent_report_allowed(from: State, to: State) -> bool {
    if from == to {
        return true;
    }
    match (from, to) {
        (State::Pending | State::Waking, State::Running)
        | (State::Hibernating, State::Hibernated)
        | (State::Terminating, State::Terminated)
        | (State::Running, State::Terminated) => true,
        (f, State::Failed) => !f.is_final(),
        _ => false,
    }
}

/// The states an agent may report.
pub const REPORTABLE: [State; 4] = [
    State::Running,
    State::Hibernated,
    State::Terminated,
    State::Failed,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, user event) pair: legal steps per §1.3, everything else 409.
    #[test]
    fn every_state_and_user_event_is_legal_or_409() {
        use State::*;
        use UserEvent::*;
        let legal = |event: UserEvent, from: State| -> Option<State> {
            match (event, from) {
                (Hibernate, Running) => Some(Hibernating),
                (Wake, Hibernated) => Some(Waking),
                (Terminate, Pending | Running | Hibernating | Hibernated | Waking) => {
                    Some(Terminating)
                }
                (Terminate, Terminating | Failed) => Some(Terminating),
                _ => None,
            }
        };
        for event in [Hibernate, Wake, Terminate] {
            for from in ALL_STATES {
                match (user_step(event, from), legal(event, from)) {
                    (Ok(step), Some(to)) => assert_eq!(step.to, to, "{event:?} from {from:?}"),
                    (Err(e), None) => {
                        assert_eq!(e.status.as_u16(), 409, "{event:?} from {from:?}");
                        assert_eq!(e.code, "invalid_state");
                        assert!(e.message.contains(from.as_str()), "{}", e.message);
                    }
                    (got, want) => panic!("{event:?} from {from:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn the_409_message_follows_streamspace() {
        let e = user_step(UserEvent::Hibernate, State::Pending).unwrap_err();
        assert_eq!(
            e.message,
            "session must be running to hibernate (currently: pending)"
        );
        let e = user_step(UserEvent::Wake, State::Running).unwrap_err();
        assert_eq!(
            e.message,
            "session must be hibernated to wake (currently: running)"
        );
    }

    #[test]
    fn finished_commands_move_the_session_per_the_failure_mapping() {
        use Action::*;
        use State::*;
        assert_eq!(on_command_finished(Start, true), Some((Pending, Running)));
        assert_eq!(on_command_finished(Start, false), Some((Pending, Failed)));
        assert_eq!(
            on_command_finished(Hibernate, false),
            Some((Hibernating, Running))
        );
        assert_eq!(on_command_finished(Wake, false), Some((Waking, Hibernated)));
        assert_eq!(
            on_command_finished(Stop, true),
            Some((Terminating, Terminated))
        );
        assert_eq!(on_command_finished(Stop, false), None);
    }

    #[test]
    fn agent_reports_follow_the_allowed_transitions() {
        use State::*;
        let allowed = [
            (Pending, Running),
            (Waking, Running),
            (Hibernating, Hibernated),
            (Terminating, Terminated),
            (Running, Terminated),
            (Running, Failed),
            (Pending, Failed),
            (Hibernated, Failed),
            (Running, Running),
            (Hibernated, Hibernated),
        ];
        for from in ALL_STATES {
            for to in REPORTABLE {
                let want = allowed.contains(&(from, to))
                    || (to == Failed && !from.is_final())
                    || (from == to);
                assert_eq!(agent_report_allowed(from, to), want, "{from:?} → {to:?}");
            }
        }
        assert!(!agent_report_allowed(Terminated, Running));
        assert!(!agent_report_allowed(Hibernated, Running));
    }

    #[test]
    fn states_and_actions_round_trip() {
        for s in ALL_STATES {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for a in [Action::Start, Action::Stop, Action::Hibernate, Action::Wake] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        let counted: Vec<&str> = COUNTED.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            COUNTED_SQL,
            format!("('{}')", counted.join("','")),
            "COUNTED_SQL agrees with COUNTED"
        );
    }
}
