"""Chinese personal names: surnames by frequency, given names by sex and birth cohort.

Surname shares of the top five come from the Ministry of Public Security name report
(2020 household registration, via shared/reference/county-figures.md, marked there as
approximate). The shares of the rest of the head list are approximate; the tail of
~150 rarer surnames shares what remains, decreasing linearly. Every character carries
its toneless pinyin, so names can be romanised without a dependency and duplicates can
be written with homophone (同音字) substitutions.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from kangqiao.synth.common import EN_REPRESENTATION_EXT

# char:pinyin:percent. Top five from the MPS 2020 report; the rest approximate.
_HEAD = """
王:wang:7.1 李:li:7.0 张:zhang:6.8 刘:liu:5.4 陈:chen:4.5 杨:yang:3.1 黄:huang:2.5 赵:zhao:2.0
吴:wu:2.0 周:zhou:1.9 徐:xu:1.5 孙:sun:1.5 马:ma:1.3 朱:zhu:1.3 胡:hu:1.2 郭:guo:1.2 何:he:1.1
林:lin:1.0 高:gao:1.0 罗:luo:1.0 郑:zheng:0.9 梁:liang:0.8 谢:xie:0.7 宋:song:0.7 唐:tang:0.7
许:xu:0.6 邓:deng:0.6 韩:han:0.6 冯:feng:0.6 曹:cao:0.5 彭:peng:0.5 曾:zeng:0.5 肖:xiao:0.5
田:tian:0.5 董:dong:0.4 潘:pan:0.4 袁:yuan:0.4 蔡:cai:0.4 蒋:jiang:0.4 余:yu:0.4 于:yu:0.4
杜:du:0.4 叶:ye:0.4 程:cheng:0.3 魏:wei:0.3 苏:su:0.3 吕:lv:0.3 丁:ding:0.3 任:ren:0.3 卢:lu:0.3
姚:yao:0.3 沈:shen:0.3 钟:zhong:0.3 姜:jiang:0.3 崔:cui:0.3 谭:tan:0.3 陆:lu:0.3 范:fan:0.2
汪:wang:0.2 廖:liao:0.2 石:shi:0.2 金:jin:0.2 韦:wei:0.2 贾:jia:0.2 夏:xia:0.2 付:fu:0.2
方:fang:0.2 邹:zou:0.2 熊:xiong:0.2 白:bai:0.2 孟:meng:0.2 秦:qin:0.2 邱:qiu:0.2 侯:hou:0.2
江:jiang:0.2 尹:yin:0.2 薛:xue:0.2 闫:yan:0.2 段:duan:0.2 雷:lei:0.2 龙:long:0.2 黎:li:0.2
史:shi:0.2 陶:tao:0.2 贺:he:0.2 毛:mao:0.2 郝:hao:0.1 顾:gu:0.1 龚:gong:0.1 邵:shao:0.1
万:wan:0.1 覃:qin:0.1 武:wu:0.1 钱:qian:0.1 戴:dai:0.1 严:yan:0.1 莫:mo:0.1 孔:kong:0.1
向:xiang:0.1 常:chang:0.1
"""
_TAIL = """
洪:hong 汤:tang 康:kang 易:yi 乔:qiao 赖:lai 文:wen 施:shi 牛:niu 樊:fan 葛:ge 邢:xing 安:an
齐:qi 伍:wu 庞:pang 颜:yan 倪:ni 庄:zhuang 聂:nie 章:zhang 鲁:lu 岳:yue 翟:zhai 殷:yin 詹:zhan
申:shen 欧:ou 耿:geng 关:guan 兰:lan 焦:jiao 俞:yu 左:zuo 柳:liu 甘:gan 祝:zhu 包:bao 宁:ning
尚:shang 符:fu 舒:shu 阮:ruan 柯:ke 纪:ji 梅:mei 童:tong 凌:ling 毕:bi 单:shan 季:ji 裴:pei
霍:huo 涂:tu 成:cheng 苗:miao 谷:gu 盛:sheng 曲:qu 翁:weng 冉:ran 骆:luo 蓝:lan 路:lu 游:you
辛:xin 靳:jin 管:guan 柴:chai 蒙:meng 鲍:bao 华:hua 喻:yu 祁:qi 蒲:pu 房:fang 滕:teng 屈:qu
饶:rao 解:xie 牟:mou 艾:ai 尤:you 阳:yang 时:shi 穆:mu 农:nong 司:si 卓:zhuo 古:gu 吉:ji
缪:miao 简:jian 车:che 项:xiang 连:lian 芦:lu 麦:mai 褚:chu 娄:lou 窦:dou 戚:qi 岑:cen 景:jing
党:dang 宫:gong 费:fei 卜:bu 冷:leng 晏:yan 席:xi 卫:wei 米:mi 柏:bai 宗:zong 瞿:qu 桂:gui
全:quan 佟:tong 应:ying 臧:zang 闵:min 苟:gou 邬:wu 边:bian 卞:bian 姬:ji 师:shi 和:he 仇:qiu
栾:luan 隋:sui 商:shang 刁:diao 沙:sha 荣:rong 巫:wu 寇:kou 桑:sang 郎:lang 甄:zhen 丛:cong
仲:zhong 虞:yu 敖:ao 巩:gong 明:ming 佘:she 池:chi 查:zha 麻:ma 苑:yuan 迟:chi 邝:kuang
"""

# Given-name characters by cohort and sex: (char, pinyin) pairs written as "字zi".
_GIVEN = {
    ("old", "male"): "国guo 建jian 华hua 明ming 军jun 平ping 德de 福fu 贵gui 财cai 生sheng 林lin "
    "海hai 荣rong 成cheng 祥xiang 永yong 文wen 志zhi 忠zhong 富fu 春chun 水shui 金jin 树shu "
    "根gen 山shan 强qiang 发fa 光guang 兴xing 顺shun 红hong",
    ("old", "female"): "秀xiu 英ying 兰lan 桂gui 芳fang 珍zhen 梅mei 玉yu 凤feng 花hua 香xiang "
    "菊ju 琴qin 云yun 霞xia 红hong 翠cui 莲lian 芬fen 娥e 淑shu 素su 春chun 月yue 金jin",
    ("mid", "male"): "伟wei 勇yong 军jun 涛tao 斌bin 杰jie 强qiang 磊lei 鹏peng 辉hui 刚gang "
    "峰feng 超chao 波bo 亮liang 俊jun 浩hao 健jian 明ming 东dong 林lin 飞fei 宇yu 龙long 志zhi "
    "建jian 华hua 平ping 海hai 江jiang 兵bing 文wen",
    ("mid", "female"): "丽li 娟juan 静jing 敏min 燕yan 艳yan 霞xia 芳fang 玲ling 红hong 梅mei "
    "丹dan 萍ping 洁jie 慧hui 琳lin 婷ting 倩qian 雪xue 莉li 娜na 颖ying 晶jing 秀xiu 英ying",
    ("young", "male"): "浩hao 宇yu 轩xuan 子zi 涵han 博bo 文wen 俊jun 杰jie 睿rui 泽ze 明ming "
    "豪hao 一yi 诺nuo 奕yi 辰chen 鑫xin 航hang 晨chen 阳yang 锦jin 天tian 宏hong 佳jia 凯kai",
    ("young", "female"): "欣xin 怡yi 梓zi 涵han 雨yu 萱xuan 思si 佳jia 诗shi 琪qi 可ke 馨xin "
    "语yu 雅ya 梦meng 妍yan 婉wan 紫zi 晨chen 悦yue 一yi 若ruo 蕊rui 瑶yao 静jing 婷ting",
}
# Extra characters that only appear as homophone mistakes in duplicate registrations.
_HOMOPHONE_ONLY = (
    "郭guo 剑jian 化hua 鸣ming 君jun 萍ping 得de 富fu 柜gui 才cai 声sheng 霖lin 荣rong 诚cheng "
    "翔xiang 勇yong 雯wen 智zhi 中zhong 纯chun 帅shuai 虹hong 宏hong 瑛ying 岚lan 方fang 贞zhen "
    "育yu 锋feng 芸yun 侠xia 勤qin 鹃juan 惠hui 庭ting 昊hao 羽yu 萱xuan 晗han 波bo 峻jun 则ze "
    "臣chen 新xin 宜yi 紫zi 丝si 嘉jia 师shi 琦qi 亚ya 萌meng 玮wei 炜wei 韬tao 彬bin 利li 晶jing "
    "民min 雁yan 铃ling 美mei 绣xiu 凌ling 佳jia 家jia 仪yi 奇qi 语yu 钧jun 健jian"
)


def _pairs(text: str) -> list[tuple[str, str]]:
    return [(tok[0], tok[1:]) for tok in text.split()]


@dataclass(frozen=True, slots=True)
class Name:
    family: str
    given: str
    family_pinyin: str
    given_pinyin: str

    @property
    def text(self) -> str:
        return self.family + self.given

    @property
    def pinyin(self) -> str:
        """``Wang Jianguo`` style romanisation (family name first)."""
        return f"{self.family_pinyin.capitalize()} {self.given_pinyin.capitalize()}"


def _load_surnames() -> tuple[list[tuple[str, str]], list[float]]:
    head = [tok.split(":") for tok in _HEAD.split()]
    tail = [tok.split(":") for tok in _TAIL.split()]
    surnames = [(c, p) for c, p, _ in head] + [(c, p) for c, p in tail]
    weights = [float(w) for _, _, w in head]
    rest = 100.0 - sum(weights)
    n = len(tail)
    raw = [0.25 - 0.20 * i / max(1, n - 1) for i in range(n)]  # linear decrease
    scale = rest / sum(raw)
    weights += [r * scale for r in raw]
    return surnames, weights


SURNAMES, SURNAME_WEIGHTS = _load_surnames()
SURNAME_SHARE = {c: w / 100.0 for (c, _), w in zip(SURNAMES, SURNAME_WEIGHTS, strict=True)}
_CUM = list(itertools.accumulate(SURNAME_WEIGHTS))
GIVEN = {key: _pairs(text) for key, text in _GIVEN.items()}

PINYIN: dict[str, str] = {}
for _c, _p in SURNAMES:
    PINYIN.setdefault(_c, _p)
for _pool in GIVEN.values():
    for _c, _p in _pool:
        PINYIN.setdefault(_c, _p)
for _c, _p in _pairs(_HOMOPHONE_ONLY):
    PINYIN.setdefault(_c, _p)

_BY_SOUND: dict[str, list[str]] = {}
for _c, _p in sorted(PINYIN.items(), key=lambda kv: (kv[1], kv[0])):
    _BY_SOUND.setdefault(_p, []).append(_c)


def cohort(birth_year: int) -> str:
    return "old" if birth_year < 1970 else "mid" if birth_year < 1995 else "young"


def pick_surname(rng: random.Random) -> tuple[str, str]:
    x = rng.random() * _CUM[-1]
    return SURNAMES[min(bisect.bisect_right(_CUM, x), len(SURNAMES) - 1)]


def pick_given(rng: random.Random, sex: str, birth_year: int) -> tuple[str, str]:
    pool = GIVEN[(cohort(birth_year), sex)]
    single = 0.10 if birth_year < 1995 else 0.18
    if rng.random() < single:
        c, p = rng.choice(pool)
        return c, p
    (c1, p1), (c2, p2) = rng.choice(pool), rng.choice(pool)
    while c2 == c1:
        c2, p2 = rng.choice(pool)
    return c1 + c2, p1 + p2


def make_name(rng: random.Random, sex: str, birth_year: int, family: tuple[str, str]) -> Name:
    given, given_py = pick_given(rng, sex, birth_year)
    return Name(family[0], given, family[1], given_py)


def pinyin_of(text: str) -> str:
    return "".join(PINYIN.get(c, "") for c in text)


def homophones(char: str) -> list[str]:
    """Other characters with the same toneless pinyin (possible 同音字 mistakes)."""
    p = PINYIN.get(char)
    return [c for c in _BY_SOUND.get(p, []) if c != char] if p else []


def with_homophone(rng: random.Random, name: Name) -> Name | None:
    """The name with one given-name character swapped for a homophone, if one exists."""
    positions = [i for i, c in enumerate(name.given) if homophones(c)]
    if not positions:
        return None
    i = rng.choice(positions)
    new = rng.choice(homophones(name.given[i]))
    given = name.given[:i] + new + name.given[i + 1 :]
    return Name(name.family, given, name.family_pinyin, pinyin_of(given))


def human_names(name: Name, *, use: str = "official", with_pinyin: bool = True) -> list[dict]:
    """FHIR HumanName list: the ideographic name, then its pinyin (EN-representation ABC)."""
    out: list[dict] = [
        {"use": use, "text": name.text, "family": name.family, "given": [name.given]}
    ]
    if with_pinyin:
        out.append(
            {
                "extension": [{"url": EN_REPRESENTATION_EXT, "valueCode": "ABC"}],
                "use": use,
                "text": name.pinyin,
                "family": name.family_pinyin.capitalize(),
                "given": [name.given_pinyin.capitalize()],
            }
        )
    return out
