"""The yearly health check of residents aged 65 and over (老年人健康管理), done at the
township health centre: vital signs, and the laboratory tests the national standard lists.

国家基本公共卫生服务规范（第三版）, 老年人健康管理服务规范, 服务内容 "健康体检": 一般体格检查
(体温、脉搏、呼吸、血压、身高、体重、腰围 ...), 辅助检查 (血常规、尿常规、肝功能（血清谷草转氨酶、
血清谷丙转氨酶和总胆红素）、肾功能（血清肌酐和血尿素）、空腹血糖、血脂（总胆固醇、甘油三酯、
低密度脂蛋白胆固醇、高密度脂蛋白胆固醇）、心电图 ...). The abdominal ultrasound is not generated.

Every check is one Encounter (type ``elderly-health-check``) followed by about fifty
Observations and their DiagnosticReports; in a county this is the largest source of
observations, which is why the synthetic county reaches a real county's volume with it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from kangqiao.synth.common import (
    SNOMED,
    Resource,
    age_on,
    clamp,
    concept,
    dt,
    ref,
    weighted,
)
from kangqiao.synth.context import Ctx, pick_day
from kangqiao.synth.encounters import encounter
from kangqiao.synth.labs import (
    CHOL,
    CREA,
    HDL,
    LDL,
    LIPID_PANEL,
    TRIG,
    measured,
    report,
    result,
)
from kangqiao.synth.residents import Person
from kangqiao.synth.vitals import (
    BMI,
    FASTING_GLUCOSE,
    HEART_RATE,
    HEIGHT,
    WEIGHT,
    bp_observation,
    simple_observation,
)

ELDERLY_AGE = 65
# Assumption: share of residents aged 65+ checked in a year; the national target for the
# elderly health management rate was 67 % (2020), and counties report 60-75 %.
CHECK_SHARE = 0.68
CHECK_TYPE = ("elderly-health-check", "老年人健康体检")

TEMPERATURE = ("8310-5", "Body temperature", "体温")
RESPIRATORY_RATE = ("9279-1", "Respiratory rate", "呼吸频率")
WAIST = ("8280-0", "Waist Circumference at umbilicus by Tape measure", "腰围")
ECG = ("8601-7", "EKG impression", "心电图")
UREA = ("22664-7", "Urea [Moles/volume] in Serum or Plasma", "尿素", "mmol/L")
CBC_PANEL = ("57021-8", "CBC W Auto Differential panel - Blood", "血常规")
URINE_PANEL = ("24357-6", "Urinalysis macro (dipstick) panel - Urine", "尿常规")
LIVER_PANEL = ("24325-3", "Hepatic function 2000 panel - Serum or Plasma", "肝功能")
KIDNEY_PANEL = ("24362-6", "Renal function 2000 panel - Serum or Plasma", "肾功能")


@dataclass(frozen=True)
class Analyte:
    """A numeric test: LOINC code, display, Chinese name, UCUM unit, mean (male, female),
    standard deviation, plausible range, decimals."""

    code: str
    display: str
    zh: str
    unit: str
    mean: tuple[float, float]
    sd: float
    lo: float
    hi: float
    decimals: int

    @property
    def test(self) -> tuple[str, str, str, str]:
        return self.code, self.display, self.zh, self.unit

    def draw(self, rng: random.Random, male: bool) -> float:
        value = clamp(rng.gauss(self.mean[0 if male else 1], self.sd), self.lo, self.hi)
        return round(value, self.decimals) if self.decimals else round(value)


def _a(code: str, display: str, zh: str, unit: str, m: float, f: float, sd: float,
       lo: float, hi: float, decimals: int) -> Analyte:
    return Analyte(code, display, zh, unit, (m, f), sd, lo, hi, decimals)


# Blood count (血常规) of adults aged 65+; means and spreads are typical Chinese adult values.
CBC = [
    _a("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "白细胞计数",
       "10*9/L", 6.3, 5.9, 1.5, 2.0, 18.0, 2),
    _a("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "红细胞计数",
       "10*12/L", 4.6, 4.2, 0.4, 2.5, 6.5, 2),
    _a("718-7", "Hemoglobin [Mass/volume] in Blood", "血红蛋白",
       "g/L", 138, 124, 13, 60, 190, 0),
    _a("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "红细胞压积",
       "%", 42, 38, 3.5, 20, 60, 1),
    _a("787-2", "MCV [Entitic volume] by Automated count", "平均红细胞体积",
       "fL", 91, 90, 5, 60, 120, 1),
    _a("785-6", "MCH [Entitic mass] by Automated count", "平均红细胞血红蛋白含量",
       "pg", 30.5, 30.0, 2, 18, 40, 1),
    _a("786-4", "MCHC [Mass/volume] by Automated count", "平均红细胞血红蛋白浓度",
       "g/L", 332, 330, 10, 280, 380, 0),
    _a("788-0", "Erythrocyte distribution width [Ratio] by Automated count", "红细胞分布宽度",
       "%", 13.0, 13.2, 0.8, 10, 22, 1),
    _a("777-3", "Platelets [#/volume] in Blood by Automated count", "血小板计数",
       "10*9/L", 200, 220, 50, 40, 600, 0),
    _a("32623-1", "Platelet mean volume [Entitic volume] in Blood by Automated count",
       "平均血小板体积", "fL", 10.2, 10.2, 1.0, 6, 15, 1),
]
# The differential: (percentage code, absolute code, display stem, Chinese, mean %, sd).
DIFFERENTIAL = [
    ("770-8", "751-8", "Neutrophils", "中性粒细胞", 60.0, 7.0),
    ("5905-5", "742-7", "Monocytes", "单核细胞", 6.0, 1.5),
    ("713-8", "711-2", "Eosinophils", "嗜酸性粒细胞", 2.5, 1.2),
    ("706-2", "704-7", "Basophils", "嗜碱性粒细胞", 0.5, 0.2),
    ("736-9", "731-0", "Lymphocytes", "淋巴细胞", 0.0, 0.0),  # the rest of 100 %
]
LIVER = [
    _a("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
       "谷丙转氨酶", "U/L", 22, 18, 9, 5, 300, 0),
    _a("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
       "谷草转氨酶", "U/L", 24, 22, 7, 8, 300, 0),
    _a("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma", "总胆红素",
       "umol/L", 13, 11, 4, 3, 80, 1),
]
KIDNEY = [
    _a(*CREA, 86, 66, 14, 35, 500, 0),
    _a(*UREA, 5.8, 5.3, 1.4, 1.5, 30, 2),
]
URINE_PH = _a("5803-2", "pH of Urine by Test strip", "尿酸碱度", "[pH]", 6.0, 6.0, 0.6,
              5.0, 8.5, 1)
URINE_SG = _a("5811-5", "Specific gravity of Urine by Test strip", "尿比重", "1", 1.016,
              1.016, 0.006, 1.003, 1.035, 3)
# Dipstick presence tests: (code, display, Chinese, probability of a positive reading).
DIPSTICK = [
    ("20454-5", "Protein [Presence] in Urine by Test strip", "尿蛋白", 0.06),
    ("25428-4", "Glucose [Presence] in Urine by Test strip", "尿糖", 0.02),
    ("2514-8", "Ketones [Presence] in Urine by Test strip", "尿酮体", 0.01),
    ("5794-3", "Hemoglobin [Presence] in Urine by Test strip", "尿潜血", 0.07),
    ("5770-3", "Bilirubin.total [Presence] in Urine by Test strip", "尿胆红素", 0.01),
    ("5799-2", "Leukocyte esterase [Presence] in Urine by Test strip", "尿白细胞", 0.08),
    ("5802-4", "Nitrite [Presence] in Urine by Test strip", "尿亚硝酸盐", 0.03),
]
# Semi-quantitative readings as SNOMED CT qualifier values.
NEGATIVE = ("260385009", "Negative", "阴性")
POSITIVE_GRADES = [
    (("260405006", "Trace", "±"), 0.45),
    (("260347006", "+", "+"), 0.35),
    (("260348001", "++", "++"), 0.15),
    (("260349009", "+++", "+++"), 0.05),
]
ECG_FINDINGS = [
    ("窦性心律，正常心电图", 0.62),
    ("窦性心律，ST-T 改变", 0.14),
    ("窦性心动过缓", 0.07),
    ("左心室高电压", 0.06),
    ("心房颤动", 0.04),
    ("室性早搏", 0.04),
    ("完全性右束支传导阻滞", 0.03),
]


def elderly_checks(ctx: Ctx, rng: random.Random, person: Person) -> list[Resource]:
    """The yearly checks of a resident aged 65+ (at the check) over the generated history."""
    if person.age < ELDERLY_AGE:
        return []
    out: list[Resource] = []
    year_start = ctx.start
    check = _Check(ctx, rng, person)
    while year_start < ctx.end:
        year_end = min(year_start + timedelta(days=365), ctx.end)
        if rng.random() < CHECK_SHARE:
            day = pick_day(rng, year_start, year_end)
            if age_on(person.birth, day) >= ELDERLY_AGE:
                out += check.on(day)
        year_start = year_end
    return out


class _Check:
    """One resident's checks: stable traits (height, usual BP, glucose) drawn once."""

    def __init__(self, ctx: Ctx, rng: random.Random, person: Person) -> None:
        self.ctx, self.rng, self.person = ctx, rng, person
        self.male = person.sex == "male"
        diseases = {d.code: d for d in person.facts.get("diseases", [])}
        self.htn, self.dm = diseases.get("htn"), diseases.get("dm")
        self.height = round(clamp(rng.gauss(164 if self.male else 152, 6), 135, 188), 1)
        self.bmi = clamp(rng.gauss(23.8, 3.2), 15.5, 38.0)

    def on(self, day: date) -> list[Resource]:
        ctx, rng, person = self.ctx, self.rng, self.person
        centre = person.place.centre
        doctor = rng.choice(centre.gps)
        nurse = rng.choice(centre.nurses or centre.gps)
        minute = rng.randint(7 * 60 + 30, 10 * 60 + 30)  # fasting, in the morning
        enc = encounter(
            ctx, person, day, minute, "AMB", CHECK_TYPE, [doctor, nurse],
            centre.org_id, centre.location_id, duration=60,
        )
        out: list[Resource] = [enc]
        when, issued = dt(day, minute + 5), dt(day, minute + 15)
        who = ref("PractitionerRole", nurse.role_id, nurse.name)
        out += self._vitals(enc["id"], day, when, issued, who)
        lab_done = dt(day, minute + rng.randint(180, 420))
        collected = dt(day, minute + 10)
        out += self._panels(enc["id"], day, collected, lab_done, ref("Organization", centre.org_id))
        ecg_by = ref("PractitionerRole", doctor.role_id, doctor.name)
        finding = weighted(rng, ECG_FINDINGS)
        out.append(
            result(ctx, person, ECG, {"valueString": finding}, collected, dt(day, minute + 30),
                   ecg_by, enc["id"], "procedure")
        )
        return out

    def _vitals(
        self, enc: str, day: date, when: str, issued: str, who: Resource
    ) -> list[Resource]:
        ctx, rng, person = self.ctx, self.rng, self.person
        sbp_mean = self.htn.mean_at(ctx.progress(day)) if self.htn else rng.gauss(128, 6)
        sbp = round(clamp(rng.gauss(sbp_mean, 9), 85, 230))
        dbp = round(clamp(0.5 * sbp_mean + rng.gauss(12, 6), 45, 135))
        bmi = clamp(self.bmi + rng.gauss(0, 0.4), 14.0, 42.0)
        weight = round(bmi * (self.height / 100) ** 2, 1)
        waist = round(clamp(bmi * 3.55 + rng.gauss(0, 4), 55, 140), 1)

        def vital(test: tuple[str, str, str], value: float, unit: str) -> Resource:
            return simple_observation(
                ctx, person, test, value, unit, unit, when, issued, who, enc, "vital-signs"
            )

        return [
            vital(TEMPERATURE, round(clamp(rng.gauss(36.5, 0.25), 35.5, 38.5), 1), "Cel"),
            vital(HEART_RATE, round(clamp(rng.gauss(74, 9), 42, 140)), "/min"),
            vital(RESPIRATORY_RATE, round(clamp(rng.gauss(18, 1.5), 12, 30)), "/min"),
            bp_observation(ctx, person, sbp, dbp, when, issued, who, enc),
            vital(HEIGHT, self.height, "cm"),
            vital(WEIGHT, weight, "kg"),
            vital(WAIST, waist, "cm"),
            vital(BMI, round(weight / (self.height / 100) ** 2, 1), "kg/m2"),
        ]

    def _panels(
        self, enc: str, day: date, collected: str, issued: str, performer: Resource
    ) -> list[Resource]:
        ctx, rng, person, male = self.ctx, self.rng, self.person, self.male

        def lab(test: tuple[str, str, str], value: Resource) -> Resource:
            return result(ctx, person, test, value, collected, issued, performer, enc)

        def panel(code: tuple[str, str, str], results: list[Resource]) -> Resource:
            return report(ctx, person, code, results, collected, issued, performer)

        def numeric(a: Analyte) -> Resource:
            return lab(a.test[:3], measured(a.draw(rng, male), a.unit))

        out: list[Resource] = []
        blood = [numeric(a) for a in CBC]
        wbc = blood[0]["valueQuantity"]["value"]
        out += blood + [lab(test, measured(v, unit)) for test, v, unit in _differential(rng, wbc)]
        out.append(panel(CBC_PANEL, out))
        fpg = self._fasting_glucose(day)
        urine = [numeric(URINE_PH), numeric(URINE_SG)]
        for code, display, zh, p in DIPSTICK:
            positive = rng.random() < (0.6 if code == "25428-4" and fpg >= 11.1 else p)
            grade = weighted(rng, POSITIVE_GRADES) if positive else NEGATIVE
            graded = concept(SNOMED, grade[0], grade[1], text=grade[2])
            urine.append(lab((code, display, zh), {"valueCodeableConcept": graded}))
        out += [*urine, panel(URINE_PANEL, urine)]
        liver = [numeric(a) for a in LIVER]
        out += [*liver, panel(LIVER_PANEL, liver)]
        kidney = [numeric(a) for a in KIDNEY]
        out += [*kidney, panel(KIDNEY_PANEL, kidney)]
        out.append(lab(FASTING_GLUCOSE, measured(fpg, "mmol/L")))
        tc = round(clamp(rng.gauss(4.9, 0.9), 2.5, 9.5), 2)
        hdl = round(clamp(rng.gauss(1.3, 0.3), 0.5, 2.8), 2)
        tg = round(clamp(rng.lognormvariate(0.4, 0.45), 0.3, 9.0), 2)
        ldl = round(clamp(tc - hdl - tg / 2.2, 0.6, 7.0), 2)  # Friedewald (mmol/L)
        lipids = [lab(t[:3], measured(v, t[3]))
                  for t, v in ((CHOL, tc), (TRIG, tg), (HDL, hdl), (LDL, ldl))]
        out += [*lipids, panel(LIPID_PANEL, lipids)]
        return out

    def _fasting_glucose(self, day: date) -> float:
        mean = self.dm.mean_at(self.ctx.progress(day)) if self.dm else 5.3
        return round(clamp(self.rng.gauss(mean, 0.8 if self.dm else 0.5), 3.0, 25.0), 1)


def _differential(
    rng: random.Random, wbc: float
) -> list[tuple[tuple[str, str, str], float, str]]:
    """The white-cell differential: each cell type's share (adding up to 100 %) and count."""
    shares = [round(clamp(rng.gauss(m, sd), 0.1, 85.0), 1) for *_, m, sd in DIFFERENTIAL]
    shares[-1] = round(max(1.0, 100.0 - sum(shares[:-1])), 1)
    out: list[tuple[tuple[str, str, str], float, str]] = []
    for (pct, absolute, stem, zh, *_), share in zip(DIFFERENTIAL, shares, strict=True):
        out.append(((pct, f"{stem}/100 leukocytes in Blood by Automated count", f"{zh}百分比"),
                    share, "%"))
        out.append(((absolute, f"{stem} [#/volume] in Blood by Automated count", f"{zh}计数"),
                    round(wbc * share / 100, 2), "10*9/L"))
    return out
