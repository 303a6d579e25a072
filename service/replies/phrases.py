"""The words of the reply grammar: opt-out in Spanish and French, and how people tell
of a contact. ``service.replies.grammar`` builds its table from these.

Every pattern here is written for *normalised* text (``grammar.normalise``): lower
case, accents dropped ("arrêt" reads "arret", "más" reads "mas"), apostrophes
dropped ("m'envoyer" reads "menvoyer", "my ex's" reads "my exs"), punctuation as
spaces.

Opt-out in Spanish and French (PRODUCT.md "Law": any reasonable words, in English,
Spanish or French) follows the English rules: the carrier-style keywords alone or
with courtesy words, and plain requests addressed to us ("dejen de enviarme
mensajes", "je ne veux plus de messages"). A sentence about someone else ("il
n'arrête pas de m'écrire", "él no deja de escribirme") is not an opt-out: every
request here begins with the stopping, never with a third person.

Contacts. Who started it decides ME or THEM, so answering the partner (replying
to their text, picking up their call, calling them back) logs THEM: they reached
out, and the THEM tip ("keep it light, let them lead") is the one that fits.
Several texts at once are one contact. "We met for coffee" names no one: it logs
ME (the cautious choice, since ME starts the restraint-first hold) and the reply
says so, with how to put it right (``Intent.mutual``).
"""

from __future__ import annotations

# --- opt-out: Spanish -----------------------------------------------------------------

_ES_POLITE = r"(?:(?:por favor|porfa|porfavor|favor de|hola|oye|ya|ok|vale|gracias) )*"
_ES_COURTESY = (
    r"(?: (?:por favor|porfa|porfavor|gracias|muchas gracias|ya|ahora|ahora mismo|ya mismo|"
    r"de inmediato|inmediatamente|ok|vale|nunca mas|mas|todo|todos))*"
)
_ES_MESSAGES = r"(?:mensajes|mensajitos|msjs|msj|textos|sms|recordatorios|notificaciones)"
_ES_FROM_US = r"(?: (?:de ustedes|de este servicio|de este numero|de steady))?"
ES_STOP_PATTERNS: tuple[str, ...] = (
    # Keywords (carriers' Spanish opt-out words), alone or with courtesy.
    _ES_POLITE + r"(?:parar|para|paren|alto|baja|de baja|la baja|cancelar|cancela|cancelen|"
    r"detener|detente|deten|desuscribir|desuscribirme|darme de baja|dame de baja|denme de baja|"
    r"dar de baja|cancelar suscripcion|cancelar mi suscripcion|quiero la baja|"
    r"quiero darme de baja|quiero cancelar|quiero cancelar mi suscripcion)" + _ES_COURTESY,
    # "no más mensajes", "ya no quiero (recibir) (más) mensajes".
    _ES_POLITE + rf"(?:no|ya no|nada) mas {_ES_MESSAGES}{_ES_FROM_US}" + _ES_COURTESY,
    _ES_POLITE + rf"(?:ya )?no quiero (?:recibir )?(?:mas )?(?:sus |los |estos |ningun |ningunos )?"
    rf"{_ES_MESSAGES}{_ES_FROM_US}(?: (?:mas|nunca mas))?" + _ES_COURTESY,
    # "dejen de enviarme mensajes", "deja de escribirme", "no me manden más".
    _ES_POLITE + r"(?:dejen|deja|dejad|paren|para|parad) de (?:enviarme|mandarme|escribirme|"
    rf"enviar|mandar|textearme)(?: (?:los |estos |sus )?{_ES_MESSAGES})?{_ES_FROM_US}"
    + _ES_COURTESY,
    _ES_POLITE + r"no me (?:envien|manden|mandes|envies|escriban|escribas|texteen) "
    rf"(?:mas|nada mas)(?: {_ES_MESSAGES})?{_ES_FROM_US}" + _ES_COURTESY,
    _ES_POLITE + r"(?:quitenme|sacame|sacadme|sacenme|borren|eliminen|borrar|eliminar) "
    r"(?:de la lista|de su lista|mi numero)" + _ES_COURTESY,
    # "basta de mensajes", "déjenme en paz", "no quiero más", "quiero salir de la lista".
    # (A bare "basta" is left out: it is as often said to the partner as to us.)
    _ES_POLITE + r"(?:ya )?basta de " + _ES_MESSAGES + _ES_FROM_US + _ES_COURTESY,
    _ES_POLITE + r"(?:dejenme|dejame|dejadme|deje) (?:en paz|tranquil[oa])" + _ES_COURTESY,
    _ES_POLITE + r"(?:ya )?no quiero (?:mas|nada|nada mas)(?: de ustedes)?" + _ES_COURTESY,
    _ES_POLITE + r"(?:quiero )?(?:salir|salirme|sacarme|borrarme|eliminarme|desinscribirme|"
    r"desinscribir|desuscribirse|darse de baja)(?: de (?:la|su|esta) lista)?" + _ES_COURTESY,
    r"fin",
    r"stop(?: (?:por favor|porfa|porfavor|gracias))+",
)
ES_HELP_PATTERN = _ES_POLITE + r"(?:ayuda|ayudame|ayuda por favor|informacion)" + _ES_COURTESY

# --- opt-out: French ------------------------------------------------------------------

_FR_POLITE = (
    r"(?:(?:svp|stp|sil vous plait|sil te plait|merci|bonjour|salut|ok|daccord|veuillez|"
    r"pouvez vous|pourriez vous|merci de|je vous prie de) )*"
)
_FR_COURTESY = (
    r"(?: (?:svp|stp|sil vous plait|sil te plait|merci|merci beaucoup|maintenant|tout de suite|"
    r"immediatement|ok|daccord|tout|definitivement))*"
)
_FR_MESSAGES = r"(?:messages|msgs|textos|sms|texto|rappels|notifications)"
_FR_WANT = r"(?:je veux|je voudrais|je souhaite|jaimerais|je desire)"
FR_STOP_PATTERNS: tuple[str, ...] = (
    # Keywords (ARRET is the French opt-out word in Canada), alone or with courtesy.
    _FR_POLITE + r"(?:arret|arreter|arrete|arretez|arretes|desabonner|desabonnement|"
    r"desabonnez moi|desabonne moi|me desabonner|desinscrire|me desinscrire|desinscription|"
    r"desinscrivez moi|annuler|annulez|annule|annulation|resilier)" + _FR_COURTESY,
    # "arrêtez de m'envoyer des messages", "arrête de m'écrire", "arrêtez les messages".
    _FR_POLITE + r"(?:arretez|arrete|arreter|cessez|cesse|cesser) "
    rf"(?:de menvoyer|de mecrire|de me texter|denvoyer|de menvoyer des {_FR_MESSAGES}|"
    rf"(?:les|vos|ces|tous les|toutes les) {_FR_MESSAGES})"
    rf"(?: (?:des|vos|ces|les) {_FR_MESSAGES})?" + _FR_COURTESY,
    # "je veux me désabonner", "je ne veux plus de messages", "plus de messages".
    _FR_POLITE
    + _FR_WANT
    + r" (?:me desabonner|me desinscrire|arreter|annuler|que ca arrete)"
    + _FR_COURTESY,
    _FR_POLITE
    + rf"(?:je )?(?:ne )?veux plus (?:recevoir )?(?:de|vos|ces|les|des) {_FR_MESSAGES}"
    + _FR_COURTESY,
    _FR_POLITE + rf"plus de {_FR_MESSAGES}" + _FR_COURTESY,
    _FR_POLITE + r"ne (?:menvoyez|menvoie|menvoyer|mecrivez|mecris|me textez) plus"
    rf"(?: (?:de|des|vos|ces) {_FR_MESSAGES})?" + _FR_COURTESY,
    _FR_POLITE + r"(?:retirez moi|enlevez moi|supprimez moi|supprimez mon numero)"
    r"(?: de (?:la|votre) liste)?" + _FR_COURTESY,
    # "laissez-moi tranquille", "fichez-moi la paix", "ne m'envoyez plus rien", "quitter".
    _FR_POLITE + r"(?:laissez moi|laisse moi|fichez moi|fiche moi|foutez moi|foutez moi) "
    r"(?:tranquille|la paix|en paix)" + _FR_COURTESY,
    _FR_POLITE + r"ne (?:menvoyez|menvoie|mecrivez|mecris|me textez) plus rien" + _FR_COURTESY,
    _FR_POLITE + r"(?:quitter|je veux quitter|je quitte)(?: (?:la|votre) liste)?" + _FR_COURTESY,
    r"stop(?: (?:svp|stp|merci|sil vous plait|sil te plait))+",
)
FR_HELP_PATTERN = _FR_POLITE + r"(?:aide|aidez moi|a laide)" + _FR_COURTESY

# --- contacts ----------------------------------------------------------------------------

# The partner, as object ("I texted him") and as subject ("he texted"), and whose
# message it was ("his text"; "my ex's" normalises to "my exs").
PARTNER = (
    r"(?:him|her|them|my ex|the ex|ex|my partner|my husband|my wife|my spouse|my bf|my gf|"
    r"my boyfriend|my girlfriend|my hubby)"
)
THEY = (
    r"(?:he|she|they|hes|shes|theyve|my ex|the ex|ex|my partner|my husband|my wife|"
    r"my spouse|my bf|my gf|my boyfriend|my girlfriend|my hubby)"
)
THEIR = (
    r"(?:his|her|their|my exs|the exs|exs|my partners|my husbands|my wifes|my spouses|my bfs|"
    r"my gfs|my boyfriends|my girlfriends)"
)
# "he text me", "i txt him": the bare form is a common past tense in texts.
TEXT_VERBS = (
    r"texted|txted|txtd|messaged|msged|msgd|dmed|dmd|whatsapped|snapchatted|snapped|wrote to|"
    r"wrote|text|txt|msg"
)
EMAIL_VERBS = r"emailed|e mailed|mailed"
CALL_VERBS = r"called|rang|phoned|facetimed|video called|rung|skyped"
SAW_VERBS = r"saw|met up with|met|visited|went to see|seen|ran into|bumped into|hung out with"
# Going to their place: "went over to his place", "popped round to hers".
VISIT_THEIRS = (
    r"(?:went|popped|drove|walked|stopped|dropped|swung|came) (?:over |round |around |by )?"
    r"(?:to )?(?:his|hers|theirs|(?:his|her|their|my exs|the exs) "
    r"(?:place|house|flat|apartment|home|work|office))"
)
REACH_VERBS = r"reached out to|reached out|contacted|got in touch with|got in touch"
# A message, as a noun; a plural is one contact too ("I sent him 3 texts").
NOUN = (
    r"(?P<medium>texts?|txts?|messages?|msgs?|emails?|e mails?|dms?|calls?|phone calls?|"
    r"voicemails?|voice mails?|vms?|voice messages?|voice notes?|missed calls?|visits?|"
    r"facetimes?|whatsapps?)"
)
# Up to three words between a verb and its noun: "a few", "like 5", "a long angry".
FILLER = r"(?:[a-z0-9]+ ){0,3}?"
# Contact that is not a message: a like or comment online, a card or a gift.
POSTED = (
    r"(?:post|photo|pic|picture|story|status|tweet|reel|video|insta|instagram|facebook|fb|"
    r"tiktok|snap)s?"
)
ONLINE_VERB = r"(?:liked|commented on|reacted to|replied to|loved|shared|hearted|viewed)"
THING = r"(?:card|letter|note|gift|present|flowers|package|parcel|meme|link|song|playlist)s?"
# Words before the thing ("a long handwritten letter"), never a person ("the kids a gift").
THING_FILLER = (
    r"(?:(?:a|an|the|some|this|that|another|one|two|few|couple of|bunch of|birthday|christmas|"
    r"anniversary|valentines|nice|long|short|little|big|handwritten|thank you|sympathy|apology|"
    r"sorry|funny|old|stupid|\d+) )*"
)
# What reply and answer words imply when no noun says.
REPLY_VERBS = r"replied|responded|wrote back|texted back|messaged back|txted back|answered back"
ANSWER_VERBS = r"answered|picked up|took"
CALL_BACK_VERBS = r"called|rang|phoned|facetimed"

# Every medium word, as the reply will name it ("by text", "by email", "by voicemail").
_MEDIUMS = {
    "text": ("text", "txt", "texted", "txted", "txtd", "sms", "msg", "message", "messaged",
             "msged", "msgd", "dm", "dmed", "dmd", "whatsapp", "whatsapped", "wrote", "wrote to",
             "snapchatted", "snapped", "replied", "responded", "wrote back", "texted back",
             "messaged back", "txted back", "answered back"),
    "email": ("email", "emailed", "e mail", "e mailed", "mailed", "mail"),
    "call": ("call", "called", "ring", "phone", "phoned", "phone call", "rang", "rung", "facetime",
             "facetimed", "video called", "skyped", "missed call", "talked on the phone",
             "spoke on the phone"),
    "voicemail": ("voicemail", "voice mail", "vm", "voice message", "voice note"),
    "saw": ("saw", "see", "seen", "met", "met up with", "visit", "visited", "in person", "person",
            "went to see", "ran into", "bumped into", "hung out with", "came over", "came by",
            "stopped by", "dropped by", "showed up", "came round", "came around", "coffee",
            "lunch", "dinner", "drinks",
            "a drink", "a coffee", "hung out", "met up", "saw each other", "had coffee",
            "had a coffee", "had lunch", "had dinner", "had drinks", "had a drink",
            "grabbed coffee", "grabbed a coffee", "grabbed lunch"),
}  # fmt: skip
MEDIUM_OF: dict[str, str] = {word: medium for medium, words in _MEDIUMS.items() for word in words}


def medium_of(word: str | None) -> str | None:
    """The medium a word names ("texts" -> text, "voicemail" -> voicemail), or None."""
    if not word:
        return None
    return MEDIUM_OF.get(word) or MEDIUM_OF.get(word.removesuffix("s"))
