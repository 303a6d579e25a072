"""Opt-outs the grammar reads: Spanish and French, and a stop inside a longer text."""

from __future__ import annotations

import pytest

from service.replies.grammar import Intent, interpret
from service.replies.grammar_rows import Command

# --- opt-out in Spanish and French --------------------------------------------------------

OPT_OUT_ES_FR: list[tuple[str, str]] = [
    ("PARAR", "es"),
    ("parar", "es"),
    ("Alto", "es"),
    ("ALTO!", "es"),
    ("BAJA", "es"),
    ("baja por favor", "es"),
    ("CANCELAR", "es"),
    ("Cancelar, gracias", "es"),
    ("DETENER", "es"),
    ("darme de baja", "es"),
    ("Quiero darme de baja", "es"),
    ("no más mensajes", "es"),
    ("No mas mensajes por favor", "es"),
    ("ya no quiero mensajes", "es"),
    ("Ya no quiero recibir más mensajes", "es"),
    ("por favor dejen de enviarme mensajes", "es"),
    ("Dejen de mandarme mensajes!", "es"),
    ("deja de escribirme", "es"),
    ("No me envíen más mensajes", "es"),
    ("quítenme de la lista", "es"),
    ("stop por favor", "es"),
    ("ARRET", "fr"),
    ("ARRÊT", "fr"),
    ("arrêt svp", "fr"),
    ("Arrête", "fr"),
    ("arrêtez", "fr"),
    ("Arrêtez de m'envoyer des messages", "fr"),
    ("arrête de m’écrire svp", "fr"),
    ("Arrêtez les messages, merci", "fr"),
    ("désabonner", "fr"),
    ("Désabonnez-moi", "fr"),
    ("je veux me désabonner", "fr"),
    ("Je ne veux plus de messages", "fr"),
    ("je ne veux plus recevoir de messages", "fr"),
    ("plus de messages svp", "fr"),
    ("Ne m'envoyez plus de messages", "fr"),
    ("ANNULER", "fr"),
    ("stop merci", "fr"),
    ("Stop svp", "fr"),
    ("Gracias por todo. Por favor dejen de enviarme mensajes.", "es"),
    ("Merci pour tout. Arrêtez svp.", "fr"),
    ("Déjenme en paz", "es"),
    ("dejame tranquila porfa", "es"),
    ("basta de mensajes", "es"),
    ("Ya no quiero más", "es"),
    ("FIN", "es"),
    ("quiero salir de la lista", "es"),
    ("desinscribirme", "es"),
    ("Ne m'envoyez plus rien", "fr"),
    ("laissez-moi tranquille svp", "fr"),
    ("Fichez-moi la paix", "fr"),
    ("QUITTER", "fr"),
]


# Speaking of someone else who will not stop: never an opt-out, in any language.
NOT_OPT_OUT_ES_FR = [
    "il n'arrête pas de m'écrire",
    "Il n’arrête pas de m’envoyer des messages",
    "elle ne veut plus de mes messages",
    "je lui ai dit d'arrêter de m'écrire",
    "él no deja de escribirme",
    "no para de mandarme mensajes",
    "le dije que dejara de escribirme",
    "ella ya no quiere mis mensajes",
    "para mi cumpleaños",
    "basta",
    "no quiero mas vivir",
    "fin de semana en la playa",
    "je quitte mon mari",
    "quitter la ville",
    "il ne me laisse pas tranquille",
    "él no me deja en paz",
]


@pytest.mark.parametrize(("text", "language"), OPT_OUT_ES_FR)
def test_spanish_and_french_opt_outs_stop_in_their_language(text: str, language: str) -> None:
    intent = interpret(text)
    assert (intent.command, intent.language) == (Command.STOP, language), text


@pytest.mark.parametrize("text", NOT_OPT_OUT_ES_FR)
def test_spanish_and_french_talk_about_someone_else_is_not_an_opt_out(text: str) -> None:
    assert interpret(text).command != Command.STOP, text


@pytest.mark.parametrize(("text", "language"), [("AYUDA", "es"), ("aide", "fr"), ("HELP", None)])
def test_help_is_read_in_its_language(text: str, language: str | None) -> None:
    assert interpret(text) == Intent(Command.HELP, language=language)


def test_english_opt_outs_carry_no_language() -> None:
    assert interpret("STOP").language is None
    assert interpret("please stop texting me").language is None


# --- a stop request inside a longer text ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "stop texting me, I want to die",
        "Stop texting me. I want to die",
        "please stop texting me - I can't do this anymore",
        "Please stop texting me and leave me alone",
        "ok, stop",
        "no more messages, thanks for trying",
        "I'm done with this, unsubscribe",
        "dejen de enviarme mensajes, ya no puedo más",
    ],
)
def test_a_stop_request_in_one_clause_of_a_longer_text_stops(text: str) -> None:
    assert interpret(text).command == Command.STOP, text


@pytest.mark.parametrize(
    "text",
    [
        "he won't stop, it's driving me mad",
        "he won't stop texting me, what do I do",
        "I asked him to stop, he didn't listen",
        "stop and think",
        "I want to stop texting him, but it's hard",
        "she won't leave me alone, and I can't sleep",
    ],
)
def test_a_clause_about_someone_else_stopping_does_not_stop(text: str) -> None:
    assert interpret(text).command != Command.STOP, text


@pytest.mark.parametrize(
    "text",
    [
        "unsub",
        "I dont want these anymore",
        "stop sending me these",
        "Stop sending me this crap",
        "no more spam",
        "lose my number",
        "i no longer want to receive these",
        "I no longer need these reminders",
        "not interested",
        "Im not interested thanks",
        "wrong number",
        "Who is this? Wrong number.",
        "I never signed up for this",
        "you've got the wrong person",
    ],
)
def test_plain_english_ways_of_saying_no_more_stop(text: str) -> None:
    assert interpret(text).command is Command.STOP


@pytest.mark.parametrize(
    "text",
    [
        "i dont want this anymore",
        "i dont want them anymore",
        "he keeps sending me garbage",
        "she said I was not interested in the kids",
        "I dialed a wrong number when calling the lawyer",
    ],
)
def test_the_same_words_about_someone_else_or_life_do_not_stop(text: str) -> None:
    assert interpret(text).command is not Command.STOP
