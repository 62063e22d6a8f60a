"""Detect crisis messages: suicide, self-harm, overdose and immediate danger (English, Spanish).

Pure and standard-library only; every pattern is compiled once at import.

Leaning toward false positives
------------------------------
A false alarm costs a peer coach a minute; a miss can cost a life. So the rules are broad:

* there is no negation handling: "I'm not suicidal" and "I don't want to die" still fire, since
  the same words carry real risk often enough and a human can tell the difference at a glance;
* indirect wording fires ("I can't do this anymore", "ya no puedo más", "better off without
  me"), and so does any mention of Narcan, fentanyl ("fent") or an OD, even in passing;
* slang and algospeak fire: kms, kys, unalive, sewer slide, self delete.

What does *not* fire, on purpose, because it is everyday speech and would page a coach on
ordinary traffic: hyperbole with an object that is not a person ("this traffic is killing me",
"my phone is dying"), "dying to <do something>" ("I'm dying to see my kids"), "to die for",
"I'm dead 😂", "cut myself shaving/cooking", "cortarme el pelo", a bare "help" (that is the HELP
keyword, whose reply names 988) and "odd". A threat by a person ("he's gonna kill me") fires even
when it may be a joke.

How a body is read
------------------
The body is read by :mod:`messages.normalize`, as keywords and sensitive words are: case-folded,
accents stripped, look-alike characters undone inside words (k!ll, su1c1de, 0verdose, k*ll),
apostrophes dropped (don't -> dont, I'm -> im), every other non-alphanumeric run turned into a
space, and repeated letters squashed (killl -> kil, pills -> pils, dieee -> die).
Patterns are written in ordinary spelling and squashed the same way when compiled, which also
absorbs single-letter misspellings ("kil myself", "to many pils"). Rules that a squash would
confuse ("od" vs "odd") run on the unsquashed text instead.

``matched`` lists rule names, never the body, so it can be logged and audited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from messages import normalize
from messages.crisis_model import KINDS, Kind, load_model
from messages.keywords import Intent, classify_keyword

__all__ = [
    "CATEGORIES",
    "KEYWORD_REPLY_MAX_WORDS",
    "KINDS",
    "KIND_CONFIDENCE",
    "LEARNED_RULE",
    "CrisisResult",
    "Kind",
    "detect_crisis",
    "learned_layer_consulted",
]

SUICIDE = "suicide"
SELF_HARM = "self_harm"
OVERDOSE = "overdose"
DANGER = "danger"
CATEGORIES: frozenset[str] = frozenset({SUICIDE, SELF_HARM, OVERDOSE, DANGER})


@dataclass(frozen=True)
class CrisisResult:
    """Whether a body is a crisis, which kinds, which rules said so (never the body), and which
    reply fits (``kind``, None when not a crisis)."""

    is_crisis: bool
    categories: frozenset[str]
    matched: tuple[str, ...]
    kind: Kind | None = None


@dataclass(frozen=True)
class _Rule:
    name: str
    categories: frozenset[str]
    pattern: re.Pattern[str]
    # False: match the unsquashed text, for rules where squashing would merge words ("odd"/"od").
    squashed: bool = True


def _prepare(body: str) -> tuple[str, str]:
    """Return (light, squashed) forms of a body (messages.normalize), padded with spaces so that
    every pattern can anchor a word with a space."""
    light = f" {normalize.light(body)} "
    return light, normalize.squash(light)


def _alt(words: Iterable[str]) -> str:
    return "(?:" + "|".join(sorted(words, key=len, reverse=True)) + ")"


def _rule(name: str, categories: Iterable[str], *sources: str, squashed: bool = True) -> _Rule:
    source = "|".join(f"(?:{s})" for s in sources)
    if squashed:
        source = normalize.squash_pattern(source)
    return _Rule(name, frozenset(categories), re.compile(source), squashed)


# Shared fragments, written in ordinary spelling (they are squashed with the rule). Alternatives
# are whole words, never "cutt?ing": squashing a pattern must not change what it means.
_I_AM = r"(?:i am|im|i m|ima|imma|iam)"
# Deliberately without "going/gonna/about": "my phone is about to die" is everyday speech.
_WANT = r"(?:want|wanna|wana|want ta|wnt|wish|would like|need|ready)"
_TO = r"(?:to|2|ta)"
_MYSELF = r"(?:my ?self|my slef|myslef|mysef|meself|my sel|muself|mself)"
_PERSON = (
    r"(?:he|she|they|hes|shes|theyre|he s|she s|they re|someone|somebody|some1|sb|this guy"
    r"|this dude|a guy|some guy"
    r"|my (?:friend|homie|homeboy|bro|brother|sister|sis|cousin|girl|boy|man|mom"
    r"|mother|dad|father|son|daughter|wife|husband|girlfriend|boyfriend|gf|bf|baby|kid|roommate"
    r"|cellie|celly|uncle|aunt|grandma|grandpa|partner|dude|guy|ex|neighbor|buddy)|the baby"
    r"|my baby daddy|my baby mama)"
)
_KILL_PERSON = r"(?:kill|killing|kil|murder|shoot|stab|hurt|beat|jump)"
_PILLS = r"(?:pills|pils|pill|xanax|xans|bars|percs|percocets|oxys|meds|medication|tabs|perks)"

# Benign idioms removed before the rules run, each replaced by a bare separator so that no rule
# can match across the hole. They are narrow on purpose: the rest of the message is still read.
_BENIGN = tuple(
    re.compile(normalize.squash_pattern(source))
    for source in (
        r" dying (?:to|2|for) (?!die )",  # "dying to see my kids", not "dying to die"
        r" to die for ",
        r" dead (?:tired|serious|wrong|broke|set on|last) ",
        r" me (?:mato|mata|matan|muero|mori) de (?:risa|hambre|sueno|frio|calor|verguenza|ganas) ",
        r" die (?:of|from) (?:laughing|laughter|boredom|embarrassment|shame|hunger) ",
        r" (?:accidentally|accidently) cut " + _MYSELF + " ",
        r" (?:cut|cutting|cuting|cuts) (?:my |the |his |her |your |some |off |back on )?"
        r"(?:hair|nails|grass|lawn|beard|onions|onion|wood|hours|losses|ties|class|weight|carbs"
        r"|sugar|coupons) ",
        r" cut " + _MYSELF + r" (?:shaving|cooking|at work|on (?:a|the|some|my))",
        r" (?:cortarme|me corte|me corto|cortar) (?:el|la|las|los) (?:pelo|cabello|barba|unas"
        r"|uas|cebolla|pasto|carne|dedo)",
        r" (?:shot|shoot|shoots) (?:me|you|him|her|them|us) (?:a|an) (?:text|txt|message|msg|dm"
        r"|email|line|pic|picture|photo|look|smile) ",
    )
)

_RULES: tuple[_Rule, ...] = (
    # --- suicide, English ---------------------------------------------------------------------
    _rule(
        "kill_myself",
        [SUICIDE],
        rf" (?:kill|killing|kilin|killed|kils|kil) {_MYSELF} ",
        r" (?:kill|killing|kil) ma ?self ",
        r" killmyself ",
        r" (?:end|ending|ended|take|taking|took) (?:my|my own) (?:life|own life) ",
        rf" (?:hang|hanging|shoot|shooting|drown|drowning|poison|poisoning) {_MYSELF} ",
        r" (?:just|please|pls|plz|somebody|someone|god|wish (?:someone|somebody|god|they) would)"
        r" kill me ",
        r" kill me now ",
    ),
    _rule("kms", [SUICIDE], r"(?<![0-9]) k ?m ?s "),  # not "5 kms" (kilometres)
    _rule("kys", [SUICIDE], r" k ?y ?s "),
    _rule(
        "suicide_word",
        [SUICIDE],
        r" su(?:i|y)?(?:c|s|sc)i?d(?:e|es|al|a|io|arme|arse|ing|ed)? ",
        r" sewer ?slide ",
        r" self ?delete ",
        r" un ?aliv(?:e|ing|ed) ",
        r" unalive (?:my|me) ",
        r" ctb ",
    ),
    _rule(
        "want_to_die",
        [SUICIDE],
        rf" (?:{_WANT}|deserve|hope|trying|try) (?:{_TO} )?(?:die|be dead|not exist|not wake up) ",
        r" (?:i should|should just|i could just|let me|just let me|i hope i|hope i) (?:just )?die ",
        r" (?:wish|rather|better off) (?:i )?(?:was|were|be|being)? ?dead ",
        r" better of dead ",
        r" (?:wish|wished) i (?:was|were|had) never (?:been )?born ",
        r" (?:wish|wished) i (?:wasnt|was not|werent) (?:here|alive|born|around) ",
    ),
    _rule(
        "dont_want_to_live",
        [SUICIDE],
        rf" (?:dont|do not|dnt|don t|no longer|not) (?:{_WANT}|wanting) (?:{_TO} )?"
        r"(?:live|be alive|be here|exist|wake up|be around|keep going|go on anymore"
        r"|do this anymore) ",
        r" (?:no|nothing|no reason|no point) (?:to live|left to live|to live for|in living) ",
        r" nothing (?:left )?to live for ",
        r" no (?:reason|point) (?:to|in) (?:live|living|go on|going on|keep going) ",
        r" (?:tired|sick) of (?:living|being alive|life|being here) ",
        r" (?:done|finished) (?:with )?(?:living|life) ",
        r" give up on (?:life|living|everything) ",
        r" (?:life|it) (?:is not|isnt|aint|not) worth (?:living|it anymore) ",
        r" not worth living ",
        r" (?:cant|cannot|can not) (?:go on like this|go on anymore|keep going|do this anymore"
        r"|do this any more|take it anymore|take this anymore|take it any more|take anymore"
        r"|handle this anymore"
        r"|keep doing this|live like this|anymore) ",
        r" i (?:want|wanna) (?:to )?disappear ",
        r" (?:think|thinking|thought|thoughts|thinkin) (?:about|of|bout) (?:dying|death|being dead"
        r"|killing myself|not being here|not waking up|ending it|ending my life|suicide) ",
        r" (?:dont|do not|cant|cannot|dnt) see (?:the|a|any) point (?:anymore|any more|in anything"
        r"|in living|in life|of living|of life|in going on|in trying) ",
        r" (?:whats|what is) the point (?:anymore|any more|of living|of anything|of life"
        r"|in living) ",
        r" no point (?:anymore|any more|in anything|in trying anymore) ",
    ),
    # Only as the whole message: "I give up on the apartment" or "I can't go on Tuesday" are not.
    _rule("whole_message_despair", [SUICIDE], r"^ (?:i give up|i cant go on|i cannot go on) $"),
    _rule(
        "better_off_without_me",
        [SUICIDE],
        r" better (?:off )?without me ",
        r" (?:nobody|no one|noone|no1) (?:would|will|gonna|going to) (?:miss|care about|notice)"
        r" me ",
        r" (?:nobody|no one|noone|no1) (?:would|will|d) (?:care|notice) if i (?:died|was gone"
        r"|die) ",
        r" (?:im|i am|i m) (?:just )?a burden ",
        r" (?:everyone|everybody|my family|my kids) (?:would|will|d) be better ",
    ),
    _rule(
        "end_it",
        [SUICIDE],
        r" end (?:it all|everything|this life|my suffering|the pain for good) ",
        r" ending it all ",
        r" (?:thinking about|thinking of|think about|think of|planning on|plan on|about|bout)"
        r" ending (?:it|my life|everything) ",
        rf" (?:{_WANT}|plan|planning|thinking about|think about|finna|gonna|gon|going|ima|imma"
        rf"|i ll|ill|i will|about|bout) (?:{_TO} )?"
        r"(?:end it|end my life) ",
    ),
    _rule(
        "method_or_goodbye",
        [SUICIDE],
        r" jump (?:off|from) (?:a|the|this) (?:bridge|building|roof|overpass) ",
        r" (?:put|putting) a bullet in my (?:head|brain) ",
        r" blow my (?:brains|head) (?:out|off) ",
        r" (?:gun|pistol|strap) (?:to|in) my (?:head|mouth) ",
        r" (?:goodbye|good bye|bye) forever ",
        r" this is (?:my )?(?:goodbye|good bye|final goodbye|last message|last text) ",
        r" (?:writing|wrote|left) (?:my|a) (?:suicide )?note ",
        r" (?:wont|will not|not gonna|not going to) be (?:around|here|alive) (?:much longer"
        r"|tomorrow|anymore|any more) ",
        r" say (?:goodbye|bye) to (?:my kids|everyone|everybody|my family) for me ",
        # Means at hand.
        r" (?:pills|rope|gun) (?:ready|lined up|saved up) ",
        r" enough (?:pills|pils) to ",
    ),
    # --- suicide, Spanish ---------------------------------------------------------------------
    _rule(
        "es_quiero_morir",
        [SUICIDE],
        r" (?:me )?quiero morir(?:me)? ",
        r" (?:quisiera|quiero|deseo|prefiero|ojala)"
        r" (?:estar |estuviera |estuviese |fuera |ya estuviera )?muert[oa] ",
        r" (?:me quiero|me voy a|voy a|quiero|pienso|estoy pensando en|ganas de) matarme ",
        r" me (?:quiero|voy a) matar ",
        r" matarme ",
        r" me mato ",
        r" (?:me quiero|me voy a|quiero|voy a) (?:ahorcar|ahorcarme|suicidar) ",
        r" ahorcarme ",
        r" (?:quiero|voy a|quisiera) (?:desaparecer|dormir y no despertar) ",
        r" no (?:quiero|quisiera) (?:despertar|despertarme) ",
        r" (?:pegarme|darme|meterme) un (?:tiro|balazo) ",
        r" tirarme (?:del|de un|de la|de una|al|a las|a la|por) ",
        r" (?:quitarme|quitar mi|acabar con mi|terminar con mi) (?:la )?vida ",
        r" (?:acabar|terminar) con todo ",
        r" (?:adios|hasta nunca) para siempre ",
    ),
    _rule(
        "es_no_quiero_vivir",
        [SUICIDE],
        r" no (?:quiero|deseo|quisiera) (?:seguir )?(?:vivir|viviendo|estar vivo|estar viva) ",
        r" (?:ya )?no quiero (?:estar|seguir) aqui ",
        r" (?:estarian|estaran|estaria|estarian todos|todos estarian) mejor sin mi ",
        r" mejor sin mi ",
        r" (?:mejor|prefiero) (?:estar )?muert[oa] ",
        r" no vale la pena (?:vivir|seguir) ",
        r" no tengo (?:razon|razones|motivo|motivos|nada|por que|porque) (?:para|por) vivir ",
        r" no tengo por que vivir ",
        # Not "no puedo más tarde" (I can't later): a common scheduling reply.
        r" (?:ya )?no (?:puedo|aguanto|soporto) mas (?!tarde |temprano |de |que |dinero |horas )",
        r" (?:cansad[oa]) de vivir ",
        r" (?:soy|solo soy) una carga ",
    ),
    # --- self-harm ----------------------------------------------------------------------------
    _rule(
        "self_harm",
        [SELF_HARM],
        rf" (?:cut|cuts|cutting|cutin|cuting) (?:{_MYSELF}|my (?:wrist|wrists|arm|arms|leg|legs"
        r"|skin|thigh|thighs|self)) ",
        rf" (?:hurt|hurting|harm|harming|harmed|burn|burning|burned|burnt|hit|hitting|punish"
        rf"|punishing|punished|starve|starving|starved|scratch|scratching|scratched) {_MYSELF} ",
        r" self ?(?:harm|harming|harmed|injury|injuring|hurt|mutilation|mutilate) ",
        rf" (?:make|making|made) {_MYSELF} bleed ",
        r" razor ?blades? ",
        r" (?:started|start|starting|back to|relapsed on|relapse on|relapsed into) cutting ",
        r" cutting again ",
        r" (?:want|wanna|urge|urges|tempted|itching) (?:to )?cut ",
    ),
    _rule(
        "wrists",
        [SUICIDE, SELF_HARM],
        r" (?:slit|slice|slash|cut|cutting|open) (?:my|her|his) wrists? ",
        r" (?:cortarme|cortar|me corte|me corto|me voy a cortar) las venas ",
    ),
    _rule(
        "es_self_harm",
        [SELF_HARM],
        r" cortarme ",
        r" me (?:corto|corte|estoy cortando|quiero cortar|voy a cortar|sigo cortando) ",
        r" (?:hacerme|hacerme mucho|me hago|me estoy haciendo) dano ",
        r" (?:lastimarme|herirme|quemarme|autolesionarme|castigarme) ",
        r" me (?:lastimo|estoy lastimando|quiero lastimar|voy a lastimar|quemo|hiero) ",
        r" auto ?lesion(?:es|arme)? ",
    ),
    # --- overdose -----------------------------------------------------------------------------
    _rule(
        "overdose_word",
        [OVERDOSE],
        r" over ?(?:dose|dosed|dosing|doses|does|doesed|dosis|dossed) ",
        r" overdose\w* ",
        r" ovedose\w* ",
        r" overdo(?:se|ze)\w* ",
        r" sobre ?dosis ",
        r" se (?:paso|pasaron) de (?:droga|drogas|pastillas|dosis) ",
    ),
    # Unsquashed: squashing would read "odd" as "od". "od'd" lost its apostrophe ("odd"), so it
    # is caught by the explicit "odd" only after OD'ing context words.
    _rule(
        "od",
        [OVERDOSE],
        r" o ?d(?:s|ed|ing|in|n|ding|din)? ",
        r" (?:he|she|they|i|someone|somebody|friend|bro|homie|hes|shes|just|think|think he"
        r"|think she|almost|about to|finna|gonna) odd ",
        squashed=False,
    ),
    _rule(
        "narcan",
        [OVERDOSE],
        r" nar(?:c|k)(?:an|on|en|in|ann)(?:ed|d)? ",
        r" nalox(?:one|on|ona) ",
        r" nasal spray for (?:od|overdose) ",
    ),
    _rule(
        "not_breathing",
        [OVERDOSE],
        rf" {_PERSON} (?:is |are |s |has |have )?(?:not|isnt|aint|stopped|stop|barely|cant|can t"
        r"|not really|no longer|isn t|wont) (?:breathing|breathin|breathe|breath|breething|breth) ",
        r" (?:not|isnt|stopped|barely) (?:breathing|breathin|breething) ",
        r" no (?:esta )?respira(?:ndo)? ",
        r" (?:dejo|deja) de respirar ",
        r" ya no respira ",
    ),
    _rule(
        "turning_blue",
        [OVERDOSE],
        r" (?:turning|turned|going|gone) (?:all )?(?:blue|purple) ",
        r" (?:lips|face|skin|fingers|fingertips|nails) (?:(?:are|is|s|turning|turned|look|looks"
        r"|going|getting|all) )*(?:blue|purple|gray|grey) ",
        r" blue lips ",
        r" (?:labios|cara|piel) (?:azules|morados|azul|morada|morado) ",
        r" (?:poniendo|puso|pone) (?:azul|morad[oa]) ",
    ),
    _rule(
        "unresponsive",
        [OVERDOSE],
        rf" {_PERSON} (?:wont|will not|isnt|is not|not|cant|can t|doesnt) (?:wake up|waking up"
        r"|responding|respond|answering|moving|waken) ",
        r" (?:cant|can t|cannot|couldnt) wake (?:him|her|them|em|my \w+)(?: up)? ",
        r" (?:cant|can t|cannot|couldnt) get (?:him|her|them|em|my \w+) (?:to )?(?:wake up|up"
        r"|to wake|breathing|to breathe|to respond) ",
        r" unresponsive ",
        r" (?:nodding out|nodding off|nodded out|foaming at the mouth|foam(?:ing)? (?:from|out)) ",
        r" no (?:despierta|responde|reacciona|se mueve) ",
        r" (?:echando|sale|le sale) espuma ",
    ),
    _rule(
        "too_many_pills",
        [OVERDOSE],
        rf" (?:took|taken|take|swallowed|swallow|ate|popped|pop|took like) (?:all|a bunch of"
        rf"|too many|to many|so many|way too many|a whole bottle of|the whole bottle of"
        rf"|a handful of|a lot of|all of|all the|all my|all his|all her|a bottle of|like \d+"
        rf"|\d+) ?{_PILLS} ",
        rf" (?:too many|to many|so many|way too many|a bunch of|a handful of) {_PILLS} ",
        r" (?:took|swallowed|drank) (?:the|a) (?:whole|entire) bottle ",
        r" (?:tome|tomo|me tome|se tomo|trague|se trago) (?:todas|muchas|demasiadas|un monton de"
        r"|un frasco de|el frasco de|toda la caja de|todo el frasco de) (?:las |mis |sus )?"
        r"(?:pastillas|pildoras|medicinas|medicamentos) ",
        r" (?:tome|tomo|me tome|se tomo|trague|se trago) (?:todo el|el) frasco ",
        r" (?:demasiadas|muchas) pastillas ",
    ),
    _rule(
        "fentanyl",
        [OVERDOSE],
        r" (?:fent|fentanyl|fentanil|fentanilo|fetty|fentynal|fentenyl|fentinal|fenta|fentanol) ",
        r" (?:m30s|m30|pressed pills|pressies) ",
    ),
    # --- danger -------------------------------------------------------------------------------
    _rule(
        "threat_to_life",
        [DANGER],
        rf" {_PERSON} (?:is |are |s |re |was |keeps )?(?:gonna|going to|gon|finna|trying to|tryna"
        rf"|try to|tried to|wants to|want to|about to|threatening to|threatened to|said hed"
        rf"|said he would|said shed|will|ll|said theyd|is|are) {_KILL_PERSON} me ",
        rf" {_PERSON} (?:ll|will|would|d) {_KILL_PERSON} me ",
        r" (?:trying|tryna|out) (?:to )?kill me ",
        rf" {_PERSON} (?:is |are |s |re )?after me ",
        r" (?:my )?life is in danger ",
        rf" {_I_AM} (?:in danger|not safe|scared for my life|afraid for my life|being followed"
        r"|being chased|being attacked|hiding|trapped|held hostage|kidnapped|bleeding out"
        r"|bleeding) ",
        r" (?:i dont|i do not|dont) feel safe ",
        r" (?:fear|scared|afraid) for my life ",
        r" (?:someone|somebody|some1|a guy|they|he|she) (?:broke|is breaking|breaking"
        r"|trying to break|tryna break) in ",
    ),
    _rule(
        "weapon",
        [DANGER],
        rf" {_PERSON} (?:has|got|have|had|pulled|pointing|pointed|is pointing|is holding|with|s got"
        r"|grabbed|is waving|waving) (?:a |his |her |their |the |out a |out his )?"
        r"(?:gun|pistol|knife|blade|strap|weapon|machete|rifle|shotgun|glock) ",
        r" (?:gun|pistol|knife|strap|glock) (?:to|at|in) my (?:head|face|chest|neck|throat) ",
        # A person, a few words, then a weapon: "my ex is outside with a knife".
        rf" {_PERSON} (?:\w+ ){{0,3}}(?:with|has|got|holding|pulled) (?:a|his|her|their|the) "
        r"(?:gun|pistol|knife|machete|rifle|shotgun|glock|blade|strap) ",
        # Not "shot down for the apartment".
        r" (?:got|been|was|were|just got|getting) (?:shot|stabbed|jumped|shot at) (?!down |out )",
        # Not "she shot me a text".
        r" (?:shot|stabbed) (?:me|him|her|my \w+) (?!a |an |back |over |up |the |some |my |your )",
        r" (?:shots|shooting) (?:fired|outside|right now) ",
        r" someone (?:is )?shooting ",
    ),
    _rule(
        "violence",
        [DANGER],
        rf" {_PERSON} (?:is |s |are |keeps |just )?(?:beating|hitting|choking|strangling|attacking"
        r"|chasing|following|punching|kicking|raping|hurting) (?:me|on me|my) ",
        rf" {_PERSON} (?:beat|hit|choked|strangled|attacked|punched|raped|stabbed|shot) me"
        r" (?!a |an |back |over |up |the |some |my |your )",
        r" (?:call|calling) (?:911|9 1 1|the police|police|the cops|an ambulance|ambulance) ",
        rf" {_I_AM} (?:gonna|going to|about to|finna|will|bout to|gon) (?:kill|shoot|stab|hurt)"
        r" (?:him|her|them|someone|somebody|my) ",
        r" i (?:ll|will|could) kill (?:him|her|them|somebody|someone) ",
    ),
    _rule(
        "dying",
        [DANGER],
        rf" {_PERSON} (?:is |s |are |re )?(?:dying|bleeding out|bleeding bad|having a seizure"
        r"|seizing|not okay|passed out|collapsed|overdosing) ",
        r" (?:think|feel like|feels like) (?:i am|im|i m|i|ima) (?:dying|gonna die|going to die) ",
        r" (?:im|i am|i m) (?:bleeding|bleeding out|bleeding bad) ",
        r" (?:i )?(?:cant|can t|cannot) breathe? ",
        r" (?:(?:he|she|someone|somebody) is|hes|shes) dead ",
    ),
    _rule(
        "plea_for_help",
        [DANGER],
        # Whole-message pleas only: "I need help with my resume" is not one; a bare "help" is the
        # HELP keyword (its reply names 988).
        r"^ (?:please |pls |plz |someone |somebody |some1 |oh god |god |i )*"
        r"(?:help me|help us|need help|need help now|need help asap|help help|help please"
        r"|help pls|help plz|sos|ayudame|ayudenme|auxilio|socorro|necesito ayuda)"
        r"(?: please| pls| plz| now| asap| right now| me| help| ya| por favor| urgente)* $",
        r" (?:somebody|someone|some1) (?:please )?help ",
        r" (?:ayudenme|auxilio|socorro) ",
        r" necesito ayuda (?:ya|ahora|urgente|por favor) ",
        r" send help ",
    ),
    # --- danger, Spanish ----------------------------------------------------------------------
    _rule(
        "es_danger",
        [DANGER],
        r" me (?:van|va|quieren|quiere|quiso|trataron|trato|estan tratando|esta tratando)"
        r" (?:a |de )?matar ",
        r" (?:nos|me) (?:van|va) a (?:matar|disparar|balear) ",
        r" (?:tiene|trae|saco|saca|tienen|traen) (?:una|un) (?:pistola|arma|cuchillo|navaja"
        r"|fusca|cuete|rifle|escopeta|machete) ",
        r" me (?:esta|estan) (?:pegando|golpeando|siguiendo|persiguiendo|ahorcando|amenazando"
        r"|atacando|apuntando) ",
        # Not "me apunto" alone: it also means "count me in".
        r" me (?:pega|golpea|golpeo|pego|ataco|disparo|apunalo|dispararon|apunalaron|violo) ",
        r" me apunto con ",
        r" (?:le|lo|la) (?:dispararon|apunalaron|balearon|mataron) ",
        r" (?:llamen|llama|llame|llamar) (?:al|a la|a) (?:911|policia|ambulancia|emergencias) ",
        r" (?:estoy|estamos) en peligro ",
        r" mi vida (?:esta )?en peligro ",
        r" se (?:esta|estan) muriendo ",
        r" se (?:murio|esta desangrando|desmayo y no) ",
        r" (?:esta|estan) entrando a (?:la|mi) casa ",
        r" (?:voy a|lo voy a|la voy a) matar(?:lo|la|los)? ",
    ),
)

_NO_CRISIS = CrisisResult(is_crisis=False, categories=frozenset(), matched=())
# The name `matched` carries when the learned layer fired (rules are named by their own names).
LEARNED_RULE = "learned_model"
# The category a crisis found by the learned layer alone is filed under, by reply kind.
_KIND_CATEGORY: dict[Kind, str] = {
    "self": SUICIDE,
    "overdose": OVERDOSE,
    "other_in_danger": DANGER,
    "violence": DANGER,
}
# Below this, the learned layer is unsure which reply fits: the rules decide, else "self".
KIND_CONFIDENCE = 0.5


# A recognised keyword reply (STOP, START, HELP, YES, NO) of at most this many words, with no
# rule's words in it, is left to the keyword path: "I can't make it", "please stop".
KEYWORD_REPLY_MAX_WORDS = 12


@dataclass(frozen=True)
class _Reading:
    normalized: str
    idioms: bool
    matched: list[str]
    categories: set[str]


def _read(body: str) -> _Reading:
    """Normalise a body and run the rules on it."""
    light, squashed = _prepare(body)
    normalized = squashed.strip()
    idioms = 0
    for benign in _BENIGN:
        squashed, found = benign.subn(" | ", squashed)
        idioms += found
    matched: list[str] = []
    categories: set[str] = set()
    for rule in _RULES:
        if rule.pattern.search(squashed if rule.squashed else light):
            matched.append(rule.name)
            categories |= rule.categories
    return _Reading(normalized, bool(idioms), matched, categories)


def _consults_learned(body: str, reading: _Reading) -> bool:
    if reading.matched:
        return True  # for the kind of reply
    if reading.idioms:
        return False  # "i cut myself shaving": a benign idiom the rules know, and nothing else
    words = reading.normalized.count(" ") + 1
    return words > KEYWORD_REPLY_MAX_WORDS or classify_keyword(body).intent is Intent.NONE


def learned_layer_consulted(body: str) -> bool:
    """Whether :func:`detect_crisis` asks the learned layer about this body (the trainer uses it
    to measure the detector exactly as shipped)."""
    return _consults_learned(body, _read(body))


def detect_crisis(body: str, *, learned: bool = True) -> CrisisResult:
    """Classify one inbound body. Never raises; matched names rules, never the text.

    A body is a crisis when either layer says so: the rules below, or (unless `learned` is
    False, for measuring the rules alone) the learned layer of :mod:`messages.crisis_model`.
    When no rule fires, the learned layer is not asked about a text holding one of the benign
    idioms the rules know (``_BENIGN``: "i cut myself shaving"), nor about a recognised keyword
    reply of at most KEYWORD_REPLY_MAX_WORDS words ("I can't make it", "please stop"): those go
    their usual way, as before the learned layer.
    """
    reading = _read(body)
    matched, categories = reading.matched, reading.categories
    consult = learned and _consults_learned(body, reading)
    model = load_model()
    # Most texts are calm: ask the crisis head alone first, the kind of reply only for a crisis.
    if not matched and not (consult and model.is_crisis_normalized(reading.normalized)):
        return _NO_CRISIS
    prediction = model.predict_normalized(reading.normalized) if consult else None
    if prediction is not None and prediction.is_crisis:
        matched.append(LEARNED_RULE)
        if not categories:
            categories.add(_KIND_CATEGORY[prediction.kind])
    if prediction is not None and prediction.kind_probability >= KIND_CONFIDENCE:
        kind = prediction.kind
    elif OVERDOSE in categories:
        kind = "overdose"
    else:
        kind = "self"
    return CrisisResult(
        is_crisis=True, categories=frozenset(categories), matched=tuple(matched), kind=kind
    )
