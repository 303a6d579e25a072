"""The command words and the table of phrases the SMS grammar matches (INTERFACE.md §3).

`GRAMMAR` is ordered: opt-out first, then the carrier keywords, then Steady's
commands, then natural phrases; service.replies.grammar reads a text against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from service.replies.phrases import (
    ANSWER_VERBS,
    CALL_BACK_VERBS,
    CALL_VERBS,
    EMAIL_VERBS,
    ES_HELP_PATTERN,
    ES_STOP_PATTERNS,
    FILLER,
    FR_HELP_PATTERN,
    FR_STOP_PATTERNS,
    NOUN,
    ONLINE_VERB,
    PARTNER,
    POSTED,
    REACH_VERBS,
    REPLY_VERBS,
    SAW_VERBS,
    TEXT_VERBS,
    THEIR,
    THEY,
    THING,
    THING_FILLER,
    VISIT_THEIRS,
)


class Command(StrEnum):
    JOIN = "join"
    CONFIRM = "confirm"  # YES
    START = "start"  # START / UNSTOP
    STOP = "stop"
    HELP = "help"
    ME = "me"  # a contact the subscriber started
    THEM = "them"  # a contact the partner started
    UNDO = "undo"
    DONE = "done"
    PAUSE = "pause"
    RESUME = "resume"
    MORE = "more"
    LESS = "less"
    WHY = "why"
    URGE = "urge"  # about to get in touch: an immediate restraint message
    STATS = "stats"  # the person's own summary
    # Y / N: answers to the daily question only while one is open (service.replies.learning
    # then records the text as storage.models.SURVEY_YES / SURVEY_NO).
    SURVEY_YES = "answer_yes"
    SURVEY_NO = "answer_no"
    ZONE = "zone"  # ZONE <place>: the subscriber names their time zone
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Row:
    pattern: re.Pattern[str]
    command: Command
    medium: str | None = None  # fixed medium for rows without a (?P<medium>) group
    language: str | None = None
    mutual: bool = False


# --- vocabulary -------------------------------------------------------------------------

_POLITE = (
    r"(?:(?:please|pls|plz|kindly|can you|could you|would you|will you|can u|could u|"
    r"i want you to|i need you to|i would like you to|id like you to|hey|hi|hello|ok|okay|"
    r"sorry|thanks|thank you|just|now) )*"
)
# Wanting *out of Steady* is unambiguous; wanting to "stop texting" is not (it may be
# about the partner), so these leads only go with the unsubscribe family.
_POLITE_WANT = _POLITE + r"(?:(?:i want to|i would like to|id like to|i wish to|i wanna) )?"
_COURTESY_TAIL = (
    r"(?: (?:please|pls|plz|now|thanks|thank you|thx|ty|ever|again|anymore|any more|asap|"
    r"right now|immediately|ok|okay))*"
)
_STOP_WORD = (
    r"(?:s+t+o+p+|stpo|sotp|stoo|stpp|sstop|stopall|stop all|unsubscribe|unsubscibe|"
    r"unsubcribe|unsuscribe|unsubsribe|unsubscrib|cancel|end|quit|revoke|optout|opt out|"
    r"opt me out)"
)
_STOP_TAIL = (
    r"(?: (?:please|pls|plz|now|it|this|thanks|thank you|thx|ty|me|all|everything|texts|"
    r"messages|the texts|the messages|these texts|these messages|texting me|messaging me|"
    r"subscription|my subscription|stop|ok|okay|asap|immediately))*"
)
_OUR_MESSAGES = (
    r"(?:texts|messages|msgs|sms|reminders|nudges|notifications|stuff|crap|junk|spam|garbage)"
)
_WHICH = r"(?:(?:these|the|any|your|all|more|any more|this|those) )?"

# ME / THEM: who, the verb, and the medium the verb implies (the words: replies.phrases).
_ME_VERB = rf"(?P<verb>{TEXT_VERBS}|{EMAIL_VERBS}|{CALL_VERBS}|{SAW_VERBS}|{REACH_VERBS})"
_THEY_VERB = (
    rf"(?P<verb>{TEXT_VERBS}|{EMAIL_VERBS}|{CALL_VERBS}|visited|came over|came by|stopped by|"
    rf"dropped by|showed up|came round|came around|{REACH_VERBS}|got back to|{REPLY_VERBS})"
)
_MEDIUM_WORD = (
    r"(?P<medium>text|txt|texted|sms|msg|message|messaged|email|emailed|e mail|dm|call|called|"
    r"phone|phoned|rang|facetime|voicemail|vm|saw|see|seen|met|visit|visited|in person|person)"
)
_LEAD = (
    r"(?:(?:ugh|oops|so|well|ok|okay|yeah|sigh|sadly|um|hmm|update|fyi|today|tonight|"
    r"yesterday|last night|this morning|earlier|and|but|also|omg|lol|fine|i caved|caved|"
    r"i gave in|gave in|i slipped|slipped up|i slipped up) )*"
)
_ADVERB = (
    r"(?:(?:just|finally|already|caved and|gave in and|went and|ended up|actually|also|"
    r"have|had|did|totally|kind of|kinda|sort of|accidentally|stupidly|then|again) )*"
)
# After "he called": "me", "back", a time, or what it was about; anything past those.
_THEY_TAIL = (
    r"(?: (?:me|to me|us|back|first|again|out|today|yesterday|tonight|last night|this morning|"
    r"this afternoon|this evening|earlier|just now|about|asking|to ask|to say|saying|and|"
    r"for|on|at|from|while|when|after|twice|\d+ times|a few times|a couple of times|"
    r"like|late|early|all day|all night|again and again|i|but|so|then)\b.*)?"
)
_TAIL = r"(?: .*)?"
_ME_NOUN_VERB = r"(?:sent|wrote|left|gave|dropped|fired off|shot)"
_THEY_NOUN_VERB = r"(?:sent|wrote|left|gave|dropped|fired off|shot)"
_WE = r"(?:we|me and (?:him|her|them|my ex)|(?:him|her|my ex) and (?:i|me))"
_WE_VERB = (
    r"(?P<verb>met up|met|saw each other|hung out|had coffee|had a coffee|had lunch|had dinner|"
    r"had drinks|had a drink|grabbed coffee|grabbed a coffee|grabbed lunch|talked on the phone|"
    r"spoke on the phone|texted|messaged|emailed|facetimed|video called|called|talked|spoke|"
    r"chatted)"
)
_MEAL = r"(?:coffee|a coffee|lunch|dinner|drinks|a drink|brunch|breakfast)"

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "fourteen": 14, "thirty": 30,
}  # fmt: skip
_DAYS = r"(?:for )?(?P<days>\d{1,3}|" + "|".join(NUMBER_WORDS) + r")"
_UNIT = r"(?: (?P<unit>days?|d|weeks?|wks?|wk|w))?"


def _row(
    pattern: str,
    command: Command,
    medium: str | None = None,
    *,
    language: str | None = None,
    mutual: bool = False,
) -> Row:
    return Row(re.compile(pattern), command, medium, language, mutual)


# Learning what helps (INTERFACE.md §3): URGE and STATS, and the answers to the daily
# question. Last, so every row above keeps its meaning; "yes" stays CONFIRM here (the
# inbound handler reads it as an answer only while a question is open).
_URGE_VERB = (
    r"(?:text|txt|texting|message|messaging|msg|call|calling|ring|ringing|phone|phoning|"
    r"email|emailing|dm|write to|writing to|see|seeing|visit|visiting|contact|contacting|"
    r"reach out to|reaching out to|reach out|get in touch with|getting in touch with|go see|"
    r"go over to|drive over to|facetime|snap)"
)
_URGE_WANT = (
    r"(?:about to|going to|gonna|want to|wanna|need to|dying to|tempted to|itching to|"
    r"close to|on the verge of|trying not to|trying hard not to|fighting the urge to|"
    r"have the urge to|have an urge to|feel like|feel the urge to|cant stop myself from|"
    r"cant help|so close to)"
)
_URGE_TAIL = r"(?: (?:so bad|so badly|right now|now|again|tonight|today|rn|asap))*"
LEARNING_ROWS: tuple[tuple[str, Command], ...] = (
    (
        r"(?:urge|urges|an urge|i have an urge|i have the urge|i got the urge|"
        r"i have a strong urge|craving|help me hold back|hold me back)" + _COURTESY_TAIL,
        Command.URGE,
    ),
    (
        rf"{_LEAD}(?:i )?(?:im |i am |i m )?(?:(?:so|really|just|kinda|kind of|still) )*"
        rf"{_URGE_WANT} (?:(?:so|really|just) )*{_URGE_VERB}"
        rf"(?: {PARTNER}(?: .*)?|{_URGE_TAIL})",
        Command.URGE,
    ),
    (
        r"(?:stats|stat|statistics|my stats|my statistics|summary|my summary|progress|"
        r"my progress|how am i doing|how am i doing so far|how have i done|my numbers)"
        + _COURTESY_TAIL,
        Command.STATS,
    ),
    (
        r"(?:yes i did|yeah i did|yep i did|i did|yes unfortunately|unfortunately yes|"
        r"sadly yes|yes sadly|yes i reached out|i reached out today)" + _COURTESY_TAIL,
        Command.SURVEY_YES,
    ),
    (
        r"(?:n|no|nope|nah|no i didnt|no i did not|no i havent|no i have not|i didnt|"
        r"i did not|not today|no not today|no contact|i held back|no i held back)" + _COURTESY_TAIL,
        Command.SURVEY_NO,
    ),
)


GRAMMAR: tuple[Row, ...] = (
    # Opt-out first: it must win over everything (CTIA, FCC 2025).
    _row(_POLITE + _STOP_WORD + _STOP_TAIL, Command.STOP),
    _row(
        _POLITE + r"(?:stop|quit|cease)(?: (?:sending|texting|messaging|contacting|emailing|"
        rf"bothering|sending me)(?: me)?)?(?: {_WHICH}{_OUR_MESSAGES})?{_COURTESY_TAIL}",
        Command.STOP,
    ),
    _row(
        _POLITE + rf"(?:no more {_OUR_MESSAGES}|(?:dont|do not|never) (?:send|text|message|"
        rf"contact|email) me(?: {_WHICH}{_OUR_MESSAGES})?|(?:dont|do not) send {_WHICH}"
        rf"{_OUR_MESSAGES}){_COURTESY_TAIL}",
        Command.STOP,
    ),
    _row(
        _POLITE_WANT + r"(?:unsubscribe(?: me)?|opt me out|opt out|remove me|take me off|"
        r"delete me|remove my number|delete my number|take my number off|leave me alone|"
        r"go away|i want out|count me out)(?:(?: from| of| off)? (?:this |the |your |these |all )?"
        r"(?:list|service|program|programme|texts|messages|thing|number))?" + _COURTESY_TAIL,
        Command.STOP,
    ),
    # "stop sending me these", "I don't want these anymore", "wrong number", "not interested".
    _row(
        _POLITE
        + r"(?:stop|quit) (?:sending|texting|messaging)(?: me)? (?:these|those|this|it)"
        + _COURTESY_TAIL,
        Command.STOP,
    ),
    _row(
        _POLITE + r"i (?:dont|do not|no longer) (?:want|need) (?:to (?:get|receive) )?"
        rf"(?:these|those|any of these|{_WHICH}{_OUR_MESSAGES})(?: from you)?" + _COURTESY_TAIL,
        Command.STOP,
    ),
    _row(
        _POLITE + r"(?:unsub|unsubcribe|unsusbcribe|usubscribe|unscubscribe|lose my number|"
        r"(?:im )?not interested|(?:im )?no longer interested|(?:you have the |youve got the |"
        r"you have |youve got )?wrong (?:number|person)|i (?:didnt|did not|never) sign(?:ed)? "
        r"up(?: for this| for these| for any of this)?)" + _COURTESY_TAIL,
        Command.STOP,
    ),
    _row(
        rf"i (?:dont|do not) want (?:to get |to receive )?{_WHICH}{_OUR_MESSAGES}"
        rf"(?: from you)?(?: anymore| any more)?{_COURTESY_TAIL}",
        Command.STOP,
    ),
    # Opt-out in Spanish and French (replies.phrases), confirmed in the same language.
    *(_row(pattern, Command.STOP, language="es") for pattern in ES_STOP_PATTERNS),
    *(_row(pattern, Command.STOP, language="fr") for pattern in FR_STOP_PATTERNS),
    # Carrier keywords.
    _row(r"(?:start|unstop|start again|restart texts)" + _COURTESY_TAIL, Command.START),
    _row(
        r"(?:yes|y|yess|yep|yeah|yea|ya|yes i confirm|confirm|i confirm)" + _COURTESY_TAIL,
        Command.CONFIRM,
    ),
    _row(r"(?:join|subscribe|sign me up)" + _COURTESY_TAIL, Command.JOIN),
    _row(
        r"(?:help|info|information|commands|menu|options|help me|what is this|whats this|"
        r"who is this|who are you|what can i text|what do i text)" + _COURTESY_TAIL,
        Command.HELP,
    ),
    _row(ES_HELP_PATTERN, Command.HELP, language="es"),
    _row(FR_HELP_PATTERN, Command.HELP, language="fr"),
    # Steady's commands.
    _row(rf"me(?: first)?(?: {_MEDIUM_WORD})?", Command.ME),
    _row(rf"(?:them|him|her|they|he|she)(?: first)?(?: {_MEDIUM_WORD})?", Command.THEM),
    _row(
        r"(?:undo|scratch that|delete that|delete last|remove that|remove last)(?: .*)?",
        Command.UNDO,
    ),
    _row(r"(?:done|did it|i did it|done it|done that)(?: (?:with )?(?P<note>.+))?", Command.DONE),
    _row(
        rf"(?:pause|snooze|take a break|break)(?: {_DAYS}{_UNIT})?{_COURTESY_TAIL}", Command.PAUSE
    ),
    _row(r"(?:resume|unpause|un pause|restart|back on|im back)" + _COURTESY_TAIL, Command.RESUME),
    _row(
        r"(?:more|send more|more often|more frequent|more frequently|speed up|faster)"
        rf"(?: {_OUR_MESSAGES})?{_COURTESY_TAIL}",
        Command.MORE,
    ),
    _row(
        r"(?:less|fewer|less often|less frequent|less frequently|slow down|slower|"
        rf"too many|too much)(?: {_OUR_MESSAGES})?{_COURTESY_TAIL}",
        Command.LESS,
    ),
    _row(
        r"(?:why|how come|why this|why that|why now|why this one|why this message|"
        r"why that message|why the message|why did i get (?:this|that)(?: message)?|"
        r"why did you send (?:this|that|me this|me that))",
        Command.WHY,
    ),
    # Time zone (INTERFACE.md §3): "ZONE Chicago", "zone 60601", "ZONE America/Denver".
    _row(
        r"(?:zone|time ?zone|tz|my (?:time ?)?zone is|set (?:my )?(?:time ?)?zone(?: to)?)"
        r"(?: (?P<place>.+))?",
        Command.ZONE,
    ),
    # Natural phrases of contact (replies.phrases): THEM before ME, so "he texted me" is
    # never read as "me", and answering them ("I replied to his text") is THEM.
    # Liking or answering their post starts a conversation: ME (before "I replied to her").
    _row(rf"{_LEAD}(?:i )?{_ADVERB}{ONLINE_VERB} {THEIR} {FILLER}{POSTED}{_TAIL}", Command.ME),
    _row(rf"{_LEAD}{THEY} {_ADVERB}{_THEY_VERB}{_THEY_TAIL}", Command.THEM),
    _row(rf"{_LEAD}{THEY} {_ADVERB}left (?:me )?{FILLER}message{_TAIL}", Command.THEM, "voicemail"),
    _row(
        rf"{_LEAD}{THEY} {_ADVERB}(?:{_THEY_NOUN_VERB}) (?:me |us )?{FILLER}{NOUN}{_TAIL}",
        Command.THEM,
    ),
    _row(
        rf"{_LEAD}{THEY} {_ADVERB}(?:tried to|tried|wanted to|kept trying to) "
        rf"(?P<verb>call|ring|phone|facetime|text|message|email|see|visit|reach)(?:ing)?{_TAIL}",
        Command.THEM,
    ),
    _row(
        rf"{_LEAD}(?:i )?(?:got|had|received|get|have|found) {FILLER}{NOUN} (?:from|off|off of) "
        rf"{PARTNER}{_TAIL}",
        Command.THEM,
    ),
    _row(rf"{_LEAD}{FILLER}{NOUN} from {PARTNER}{_TAIL}", Command.THEM),
    _row(rf"{_LEAD}(?:i )?heard (?:back )?from {PARTNER}{_TAIL}", Command.THEM),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?:{REPLY_VERBS}|{ANSWER_VERBS}|got back) (?:to )?{THEIR} "
        rf"{FILLER}{NOUN}{_TAIL}",
        Command.THEM,
    ),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?P<verb>{REPLY_VERBS}|got back)(?: to)? {PARTNER}{_TAIL}",
        Command.THEM,
        "text",
    ),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?:{TEXT_VERBS}|{EMAIL_VERBS}) {PARTNER} back{_TAIL}",
        Command.THEM,
        "text",
    ),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?:{CALL_BACK_VERBS}) {PARTNER} back{_TAIL}", Command.THEM, "call"
    ),
    _row(rf"{_LEAD}(?:i )?{_ADVERB}returned {THEIR} {FILLER}{NOUN}{_TAIL}", Command.THEM),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?:answered|picked up)(?: {PARTNER})? when {THEY} "
        rf"(?P<verb>called|rang|phoned|facetimed){_TAIL}",
        Command.THEM,
    ),
    _row(
        rf"{_LEAD}{THEY} {_ADVERB}{ONLINE_VERB} (?:my|one of my|a) {FILLER}{POSTED}{_TAIL}",
        Command.THEM,
    ),
    _row(
        rf"{_LEAD}{THEY} {_ADVERB}(?:sent|gave|left|dropped off|mailed) (?:me |us )?{THING_FILLER}"
        rf"{THING}{_TAIL}",
        Command.THEM,
    ),
    # "We met for coffee": nobody named as starting it; logged as ME (replies.phrases).
    _row(rf"{_LEAD}{_WE} {_ADVERB}{_WE_VERB}{_TAIL}", Command.ME, mutual=True),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?:had|grabbed|went for|got) {_MEAL} with {PARTNER}{_TAIL}",
        Command.ME,
        "saw",
        mutual=True,
    ),
    # The subscriber reached out: the noun names the medium ("I wrote him an email"); a
    # message left for someone is a voicemail.
    _row(rf"{_LEAD}(?:i )?{_ADVERB}left {PARTNER} {FILLER}message{_TAIL}", Command.ME, "voicemail"),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}{_ME_NOUN_VERB} {PARTNER} {FILLER}{NOUN}{_TAIL}",
        Command.ME,
    ),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}{_ME_NOUN_VERB} {FILLER}{NOUN} (?:to|for) {PARTNER}{_TAIL}",
        Command.ME,
    ),
    _row(rf"{_LEAD}(?:i )?{_ADVERB}{VISIT_THEIRS}{_TAIL}", Command.ME, "saw"),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}slid into {THEIR} (?:dms|dm|messages|inbox){_TAIL}",
        Command.ME,
        "text",
    ),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?:sent|gave|left|dropped off|mailed) {PARTNER} {THING_FILLER}"
        rf"{THING}{_TAIL}",
        Command.ME,
    ),
    _row(
        rf"{_LEAD}(?:i )?{_ADVERB}(?:sent|gave|left|dropped off|mailed) {THING_FILLER}{THING} "
        rf"(?:to|for) {PARTNER}{_TAIL}",
        Command.ME,
    ),
    _row(rf"{_LEAD}i {_ADVERB}{_ME_VERB}(?: {PARTNER}{_TAIL}| (?:and|but) .*)?", Command.ME),
    _row(rf"{_LEAD}{_ADVERB}{_ME_VERB} {PARTNER}{_TAIL}", Command.ME),
    *(_row(pattern, command) for pattern, command in LEARNING_ROWS),
)
