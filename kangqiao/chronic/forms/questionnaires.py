"""The national follow-up forms of NBPHS-2017 as FHIR R4 Questionnaires.

高血压患者随访服务记录表 and 2型糖尿病患者随访服务记录表: fields and answer codes follow
the paper forms (option numbers become codes, so "1 门诊" is code "1"). Fields both forms
share have the same linkId, so the service maps answers once. linkIds are an interface:
rename one and stored QuestionnaireResponses stop matching.

One group is not on the paper form: ``urgent-screen`` records the urgent-referral check
the standard requires first at every visit (HTN 3(1), DM 3), which the rules need as
data. The form's own symptom checklist stays separate, so ticking a routine symptom
such as 多饮 does not by itself mean the clinician found an urgent condition.
"""

from __future__ import annotations

from kangqiao.chronic.forms import observations as obs
from kangqiao.chronic.forms.items import (
    CS_FOLLOWUP_CLASS,
    KQ,
    Json,
    code_system,
    group,
    item,
    options,
    translated,
)
from kangqiao.chronic.rules import diabetes, hypertension
from kangqiao.chronic.rules.model import SYMPTOM_LABELS, Disease, Symptom, VisitClass

CS_MODE = code_system("followup-mode")
CS_HTN_SYMPTOM = code_system("htn-followup-symptom")
CS_DM_SYMPTOM = code_system("dm-followup-symptom")
CS_URGENT = code_system("urgent-referral-symptom")
CS_LEVEL3 = code_system("good-fair-poor")  # 心理调整 / 遵医行为: 1 良好 2 一般 3 差
CS_SALT = code_system("salt-intake")
CS_ADHERENCE = code_system("medication-adherence")
CS_YES_NO = code_system("absent-present")  # 1 无 2 有, as printed on the form
CS_HYPO = code_system("hypoglycaemia-frequency")
CS_FOOT_PULSE = code_system("dorsalis-pedis-pulse")
CS_SIDE = code_system("body-side")

_HTN_SYMPTOMS = (
    ("1", "无症状", "no symptoms"),
    ("2", "头痛头晕", "headache, dizziness"),
    ("3", "恶心呕吐", "nausea, vomiting"),
    ("4", "眼花耳鸣", "blurred vision, tinnitus"),
    ("5", "呼吸困难", "difficulty breathing"),
    ("6", "心悸胸闷", "palpitations, chest tightness"),
    ("7", "鼻衄出血不止", "nosebleed that will not stop"),
    ("8", "四肢发麻", "numb limbs"),
    ("9", "下肢水肿", "leg oedema"),
)
_DM_SYMPTOMS = (
    ("1", "无症状", "no symptoms"),
    ("2", "多饮", "polydipsia"),
    ("3", "多食", "polyphagia"),
    ("4", "多尿", "polyuria"),
    ("5", "视力模糊", "blurred vision"),
    ("6", "感染", "infection"),
    ("7", "手脚麻木", "numb hands or feet"),
    ("8", "下肢浮肿", "leg oedema"),
    ("9", "体重明显下降", "marked weight loss"),
)
_LEVEL3 = (("1", "良好", "good"), ("2", "一般", "fair"), ("3", "差", "poor"))


def _header() -> list[Json]:
    return [
        item("visit-date", "随访日期", "Visit date", "date", required=True),
        item(
            "visit-mode",
            "随访方式",
            "Visit mode",
            "choice",
            required=True,
            answer_options=options(
                CS_MODE, ("1", "门诊", "clinic"), ("2", "家庭", "home"), ("3", "电话", "phone")
            ),
        ),
    ]


def _symptoms(codes: tuple[tuple[str, str, str], ...], system: str) -> list[Json]:
    return [
        item(
            "symptoms",
            "症状",
            "Symptoms",
            "choice",
            repeats=True,
            answer_options=options(system, *codes),
        ),
        item("symptoms-other", "其他症状", "Other symptoms", "string"),
    ]


def _urgent_screen(disease: Disease) -> Json:
    listed = (
        hypertension.URGENT_SYMPTOMS
        if disease is Disease.HYPERTENSION
        else diabetes.URGENT_SYMPTOMS
    )
    symptoms = sorted(listed, key=lambda s: list(Symptom).index(s))
    return group(
        "urgent-screen",
        "急症筛查（转诊指征）",
        "Urgent-referral screen",
        item(
            "urgent-symptoms",
            "紧急症状",
            "Urgent symptoms",
            "choice",
            repeats=True,
            answer_options=options(CS_URGENT, *((s.value, *SYMPTOM_LABELS[s]) for s in symptoms)),
        ),
        item("temperature", "体温", "Body temperature", "decimal", measure=obs.TEMPERATURE),
        item(
            "pregnant-or-breastfeeding",
            "妊娠期或哺乳期",
            "Pregnant or breastfeeding",
            "boolean",
        ),
        item(
            "other-unmanageable",
            "存在本机构不能处理的其他情况",
            "Other condition the clinic cannot manage",
            "boolean",
        ),
        item(
            "new-or-worse-complication",
            "新发并发症或原有并发症加重",
            "New or worsening complication",
            "boolean",
        ),
    )


def _signs(disease: Disease) -> Json:
    children = [
        item("bp-systolic", "收缩压", "Systolic BP", "integer", measure=obs.SYSTOLIC),
        item("bp-diastolic", "舒张压", "Diastolic BP", "integer", measure=obs.DIASTOLIC),
        item("weight", "体重", "Weight", "decimal", measure=obs.WEIGHT),
        item("weight-target", "目标体重", "Target weight", "decimal", unit=("kg", "kg")),
        item("height", "身高", "Height", "decimal", measure=obs.HEIGHT),
        item("bmi", "体质指数", "BMI", "decimal", measure=obs.BMI),
        item("bmi-target", "目标体质指数", "Target BMI", "decimal", unit=("kg/m2", "kg/m²")),
        item("heart-rate", "心率", "Heart rate", "integer", measure=obs.HEART_RATE),
    ]
    if disease is Disease.DIABETES_T2:
        children += [
            item(
                "foot-pulse",
                "足背动脉搏动",
                "Dorsalis pedis pulse",
                "choice",
                answer_options=options(
                    CS_FOOT_PULSE,
                    ("1", "触及正常", "normal"),
                    ("2", "减弱", "weak"),
                    ("3", "消失", "absent"),
                ),
            ),
            item(
                "foot-pulse-side",
                "足背动脉搏动异常侧",
                "Side of the abnormal pulse",
                "choice",
                answer_options=options(
                    CS_SIDE,
                    ("1", "双侧", "both"),
                    ("2", "左侧", "left"),
                    ("3", "右侧", "right"),
                ),
            ),
        ]
    children.append(item("signs-other", "其他体征", "Other signs", "string"))
    return group("signs", "体征", "Signs", *children)


def _lifestyle(disease: Disease) -> Json:
    def pair(link: str, zh: str, en: str, unit: tuple[str, str]) -> list[Json]:
        return [
            item(link, zh, en, "decimal", unit=unit),
            item(f"{link}-target", f"{zh}（目标）", f"{en} (target)", "decimal", unit=unit),
        ]

    salt_or_food: list[Json]
    if disease is Disease.HYPERTENSION:
        salt = options(CS_SALT, ("1", "轻", "light"), ("2", "中", "moderate"), ("3", "重", "heavy"))
        salt_or_food = [
            item("salt-intake", "摄盐情况", "Salt intake", "choice", answer_options=salt),
            item(
                "salt-intake-target",
                "摄盐情况（目标）",
                "Salt intake (target)",
                "choice",
                answer_options=salt,
            ),
        ]
    else:
        salt_or_food = pair("staple-food", "主食", "Staple food", ("g/d", "克/天"))
    return group(
        "lifestyle",
        "生活方式指导",
        "Lifestyle",
        *pair("smoking", "日吸烟量", "Cigarettes a day", ("/d", "支")),
        # 两 (liang) is 50 g; the form counts liquor in 两, so the unit stays as printed.
        *pair("drinking", "日饮酒量", "Alcohol a day", ("{liang}", "两")),
        *pair("exercise-times", "运动（次/周）", "Exercise sessions a week", ("/wk", "次/周")),
        *pair("exercise-minutes", "运动（分钟/次）", "Minutes per session", ("min", "分钟/次")),
        *salt_or_food,
        item(
            "psychological-adjustment",
            "心理调整",
            "Psychological adjustment",
            "choice",
            answer_options=options(CS_LEVEL3, *_LEVEL3),
        ),
        item(
            "compliance",
            "遵医行为",
            "Following medical advice",
            "choice",
            answer_options=options(CS_LEVEL3, *_LEVEL3),
        ),
    )


def _tests(disease: Disease) -> list[Json]:
    if disease is Disease.HYPERTENSION:
        return [item("auxiliary-exams", "辅助检查", "Investigations", "text")]
    return [
        group(
            "tests",
            "辅助检查",
            "Investigations",
            item(
                "fasting-glucose",
                "空腹血糖值",
                "Fasting glucose",
                "decimal",
                measure=obs.FASTING_GLUCOSE,
            ),
            item("hba1c", "糖化血红蛋白", "HbA1c", "decimal", measure=obs.HBA1C),
            item(obs.HBA1C_DATE, "检查日期", "Date of HbA1c", "date"),
            item("tests-other", "其他检查", "Other investigations", "text"),
        )
    ]


def _medication(disease: Disease) -> Json:
    drug = group(
        "medication",
        "用药情况",
        "Medication",
        item("medication-name", "药物名称", "Drug name", "string"),
        item(
            "medication-times-per-day",
            "用法（每日次数）",
            "Times a day",
            "integer",
            unit=("/d", "次/日"),
        ),
        item("medication-dose", "用量（每次）", "Dose each time", "decimal", unit=("mg", "mg")),
        repeats=True,
    )
    if disease is Disease.HYPERTENSION:
        return drug
    return group(
        "medications",
        "用药情况",
        "Medications",
        drug,
        item("insulin-type", "胰岛素种类", "Insulin type", "string"),
        item("insulin-usage", "胰岛素用法和用量", "Insulin schedule and dose", "string"),
    )


def _assessment(disease: Disease) -> list[Json]:
    adherence = options(
        CS_ADHERENCE,
        ("1", "规律", "regular"),
        ("2", "间断", "intermittent"),
        ("3", "不服药", "not taking"),
    )
    out = [
        item(
            "medication-adherence",
            "服药依从性",
            "Medication adherence",
            "choice",
            answer_options=adherence,
        ),
        item(
            "adverse-reaction",
            "药物不良反应",
            "Adverse drug reaction",
            "choice",
            answer_options=options(CS_YES_NO, ("1", "无", "none"), ("2", "有", "present")),
        ),
        item("adverse-reaction-detail", "不良反应描述", "Reaction details", "string"),
        item(
            "adverse-reaction-uncontrolled",
            "不良反应难以控制",
            "Reaction cannot be controlled",
            "boolean",
        ),
    ]
    if disease is Disease.DIABETES_T2:
        out.append(
            item(
                "hypoglycaemia",
                "低血糖反应",
                "Hypoglycaemic reactions",
                "choice",
                answer_options=options(
                    CS_HYPO,
                    ("1", "无", "none"),
                    ("2", "偶尔", "occasional"),
                    ("3", "频繁", "frequent"),
                ),
            )
        )
    out.append(
        item(
            "classification",
            "此次随访分类",
            "Classification of this visit",
            "choice",
            required=True,
            answer_options=options(CS_FOLLOWUP_CLASS, *((c.code, c.zh, c.en) for c in VisitClass)),
        )
    )
    return out


def _footer() -> list[Json]:
    return [
        group(
            "referral",
            "转诊",
            "Referral",
            item("referral-reason", "转诊原因", "Reason for referral", "string"),
            item("referral-facility", "转诊机构及科别", "Facility and department", "string"),
        ),
        item("next-visit-date", "下次随访日期", "Next visit date", "date", required=True),
        item("doctor", "随访医生签名", "Doctor", "string", required=True),
    ]


_TITLES = {
    Disease.HYPERTENSION: (
        "htn-followup",
        "高血压患者随访服务记录表",
        "Hypertension follow-up record",
        "HypertensionFollowUpRecord",
    ),
    Disease.DIABETES_T2: (
        "dm-followup",
        "2型糖尿病患者随访服务记录表",
        "Type 2 diabetes follow-up record",
        "Type2DiabetesFollowUpRecord",
    ),
}


def questionnaire(disease: Disease | str) -> Json:
    """The national follow-up form of ``disease`` ("htn" or "dm") as a Questionnaire."""
    disease = Disease(disease)
    qid, zh, en, name = _TITLES[disease]
    symptoms = _symptoms(
        _HTN_SYMPTOMS if disease is Disease.HYPERTENSION else _DM_SYMPTOMS,
        CS_HTN_SYMPTOM if disease is Disease.HYPERTENSION else CS_DM_SYMPTOM,
    )
    return {
        "resourceType": "Questionnaire",
        "id": qid,
        "url": f"{KQ}/Questionnaire/{qid}",
        "version": "NBPHS-2017",
        "name": name,
        "title": zh,
        "_title": translated(en),
        "status": "active",
        "language": "zh-CN",
        "subjectType": ["Patient"],
        "publisher": "Kangqiao",
        "description": (
            f"{zh}（国家基本公共卫生服务规范（第三版），国卫基层发〔2017〕13号）。"
            f" {en} of the National Basic Public Health Service Standards, 2017."
        ),
        "item": [
            *_header(),
            _urgent_screen(disease),
            *symptoms,
            _signs(disease),
            _lifestyle(disease),
            *_tests(disease),
            *_assessment(disease),
            _medication(disease),
            *_footer(),
        ],
    }
